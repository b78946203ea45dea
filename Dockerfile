# Realcheck service image: installs and starts exactly what `make run` does.
#   docker build -t realcheck .                       # CPU (onnxruntime)
#   docker build -t realcheck:gpu --build-arg RUNTIME=gpu \
#       --build-arg BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 .   # GPU (onnxruntime-gpu;
#       Ubuntu 24.04 brings Python 3.12, the service needs 3.11+)
#   docker run -p 8080:8080 -v realcheck-data:/data realcheck
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG RUNTIME=cpu
ENV PYTHONUNBUFFERED=1 \
    REALCHECK_HOST=0.0.0.0 \
    REALCHECK_PORT=8080 \
    REALCHECK_DATA_DIR=/data \
    RUNTIME=${RUNTIME}
RUN if ! command -v python3 >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv make \
        && rm -rf /var/lib/apt/lists/*; \
    elif ! command -v make >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /app
COPY pyproject.toml Makefile README.md ./
COPY service ./service
COPY model_export ./model_export
COPY bench ./bench
COPY models ./models
# Same recipe as `make run`: a venv with the service and one ONNX Runtime wheel.
RUN make install RUNTIME=${RUNTIME}
VOLUME /data
EXPOSE 8080
HEALTHCHECK CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health')"
CMD ["make", "run"]
