FROM python:3.11-slim

# Logs are one JSON object per line on stdout: no buffering, so `docker logs` sees them at once.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ffmpeg (and ffprobe) without the X11/desktop recommends; an unprivileged user to run as.
# /data/* are created here, owned by that user: a fresh named volume copies the ownership of
# its mount point from the image, so without this the volumes would be root-owned and the
# workers could not write clips or outputs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 clipline \
    && mkdir -p /data/work /data/output /data/media \
    && chown clipline:clipline /data/work /data/output /data/media

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY pipeline ./pipeline
COPY actors ./actors
COPY clipline ./clipline
RUN pip install --no-cache-dir -c constraints.txt .

USER clipline
ENV CLIPLINE_WORK_DIR=/data/work CLIPLINE_OUTPUT_DIR=/data/output CLIPLINE_MEDIA_DIR=/data/media
CMD ["clipline", "worker", "--stage", "all"]
