"""CPU speed of the MobileNetV2 blocks 0-10 port (model_export.pretrained), one thread.

    python -m model_export.pretrained_speed [--batch 32] [--sides 112 96] [--repeats 5]

Prints the median wall-clock and CPU (process) milliseconds per image of an inference-mode eval
forward pass; on a shared machine the CPU figure is the one that does not depend on other load.
Weights need not be fetched: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from model_export import pretrained


def ms_per_image(
    side: int, batch: int = 32, repeats: int = 5, upto: int = 10, channels_last: bool = False
) -> tuple[float, float]:
    """(wall ms, CPU ms) per image, medians over ``repeats`` batches."""
    torch.set_num_threads(1)
    model = pretrained.MobileNetV2Blocks(upto=upto).eval()
    x = torch.rand(batch, 3, side, side)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    wall, cpu = [], []
    with torch.inference_mode():
        model(x)  # warm-up
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            model(x)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1000 / batch, statistics.median(cpu) * 1000 / batch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sides", type=int, nargs="+", default=[112, 96])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args(argv)
    layout = "channels_last" if args.channels_last else "NCHW"
    print(f"torch {torch.__version__}, threads 1, batch {args.batch}, blocks 0-10, {layout}")
    for side in args.sides:
        wall, cpu = ms_per_image(side, args.batch, args.repeats, channels_last=args.channels_last)
        print(f"{side}x{side}: {wall:.2f} ms/image wall, {cpu:.2f} ms/image CPU")


if __name__ == "__main__":
    main()
