"""The video pieces on their own: sniffing, the sampling plan, face tracks, the combining rule."""

from __future__ import annotations

import pytest

from service.video import combine, sampling, tracks
from service.video.decode import sniff_video

RULE = {"threshold": 0.5, "band": (0.3, 0.7), "trim": 0.1, "min_frames": 3,
        "max_disagreement": 0.34}


def test_sniffing_by_magic_bytes():
    assert sniff_video(b"\x00\x00\x00\x20ftypisom" + b"\0" * 20) == "mp4"
    assert sniff_video(b"\x00\x00\x00\x14ftypqt  " + b"\0" * 20) == "mov"
    assert sniff_video(b"\x00\x00\x00\x08wide\x00\x00\x00\x08mdat") == "mov"
    assert sniff_video(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81") == "webm"
    assert sniff_video(b"\x00\x00\x00\x1cftypheic" + b"\0" * 20) is None  # a HEIF still
    assert sniff_video(b"\xff\xd8\xff\xe0") is None and sniff_video(b"") is None


def test_sampling_plan():
    p = sampling.plan(12.4, 2.0, 120, 60.0)
    assert (p.rate, p.count, p.span_s) == (2.0, 25, 12.4) and p.time(3) == 1.5
    long = sampling.plan(600.0, 2.0, 120, 60.0)  # only the first minute, at 2/s
    assert (long.rate, long.count, long.span_s) == (2.0, 120, 60.0)
    dense = sampling.plan(30.0, 10.0, 60, 60.0)  # the budget lowers the rate, whole span kept
    assert (dense.rate, dense.count) == (2.0, 60)
    assert sampling.plan(0.1, 2.0, 120, 60.0).count == 1
    assert sampling.plan(None, 2.0, 120, 60.0).count == 120


def face(x, y, side=100, score=0.5):
    return {"box": [x, y, side, side], "score": score, "too_small": False}


def test_tracks_follow_moving_faces_that_appear_and_disappear():
    frames = [
        (0, 0.0, [face(10, 10)]),
        (1, 0.5, [face(30, 15), face(400, 100)]),  # a second person enters
        (2, 1.0, [face(400, 110), face(60, 20)]),  # listed in the other order
        (3, 1.5, [face(420, 110)]),  # the first is hidden for a moment...
        (4, 2.0, [face(100, 30), face(430, 120)]),  # ...and back, beyond the overlap: by position
        (5, 2.5, [face(700, 300)]),  # someone new, far away; the others have left
    ]
    linked = tracks.link(frames)
    assert [[e["frame_index"] for e in t.entries] for t in linked] == [
        [0, 1, 2, 4], [1, 2, 3, 4], [5]]
    assert [e["box"][0] for e in linked[0].entries] == [10, 30, 60, 100]


def test_a_face_gone_too_long_starts_a_new_track():
    frames = [(i, i / 2, [face(10, 10)] if i in (0, 1, 5) else []) for i in range(6)]
    assert [len(t.entries) for t in tracks.link(frames)] == [2, 1]


def test_trimmed_mean_of_logits():
    scores = [0.9, 0.92, 0.88, 0.91, 0.05, 0.93, 0.9, 0.89, 0.9, 0.92]  # one odd frame
    out = combine.combine_track(scores, **RULE)
    assert out["verdict"] == "fake" and out["score"] > 0.85 and out["consistent"]
    plain = combine.sigmoid(sum(map(combine.logit, scores)) / len(scores))
    assert out["score"] > plain  # the trim dropped the odd frame; a plain mean is pulled down
    assert combine.trimmed_mean([1, 2, 3, 100], 0.25) == 2.5


def test_short_or_inconsistent_tracks_are_uncertain():
    short = combine.combine_track([0.99, 0.99], **RULE)
    assert short["verdict"] == "uncertain" and short["too_short"] and short["label"] == "FAKE"
    mixed = combine.combine_track([0.99, 0.02, 0.98, 0.03, 0.97, 0.04], **RULE)
    assert mixed["verdict"] == "uncertain" and not mixed["consistent"]
    none = combine.combine_track([], **RULE)
    assert none["verdict"] == "uncertain" and none["score"] is None


@pytest.mark.parametrize("verdicts,expected", [
    ([("real", 0.1), ("fake", 0.8), ("uncertain", 0.95)], 1),
    ([("real", 0.1), ("uncertain", 0.4), ("real", 0.2)], 1),
    ([("real", 0.1), ("real", 0.25)], 1),
    ([], None),
])
def test_a_video_is_as_fake_as_its_most_fake_track(verdicts, expected):
    assert combine.most_fake([{"verdict": v, "score": s} for v, s in verdicts]) == expected


def test_a_fake_track_of_mostly_unfamiliar_faces_is_uncertain():
    """The familiarity gate, as for an image: a FAKE score on faces unlike the training faces is
    not trusted when most of the track's judged frames show one; a minority does not matter."""
    scores = [0.9, 0.92, 0.88, 0.95]
    held = combine.combine_track(scores, **RULE, unfamiliar=[True, True, True, False])
    assert held["verdict"] == "uncertain" and held["label"] == "FAKE"
    assert "not trusted" in held["note"]
    kept = combine.combine_track(scores, **RULE, unfamiliar=[True, False, False, None])
    assert kept["verdict"] == "fake" and kept["note"] is None
    real = combine.combine_track([0.1, 0.12, 0.2], **RULE, unfamiliar=[True, True, True])
    assert real["verdict"] == "real", "a gate that holds back FAKE only leaves REAL alone"
    both = ("fake", "real")
    held_real = combine.combine_track([0.1, 0.12, 0.2], **RULE, unfamiliar=[True, True, True],
                                      gate_holds=both)
    assert held_real["verdict"] == "uncertain" and held_real["label"] == "REAL"
    assert "not trusted" in held_real["note"]
    kept_real = combine.combine_track([0.1, 0.12, 0.2], **RULE, unfamiliar=[True, False, False],
                                      gate_holds=both)
    assert kept_real["verdict"] == "real" and kept_real["note"] is None
