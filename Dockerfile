FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 clipline

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY actors ./actors
COPY clipline ./clipline
RUN pip install --no-cache-dir .

USER clipline
ENV CLIPLINE_WORK_DIR=/data/work CLIPLINE_OUTPUT_DIR=/data/output CLIPLINE_MEDIA_DIR=/data/media
CMD ["clipline", "worker", "--stage", "all"]
