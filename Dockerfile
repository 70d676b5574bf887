# runwatch API image: the package installed from this build, run as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY src ./src
COPY migrations ./migrations
RUN pip install -c constraints.txt . \
    && useradd --system --uid 10001 --home-dir /home/runwatch --create-home runwatch \
    && install -d -o runwatch -m 700 /home/runwatch/keys \
    && rm -rf /build
WORKDIR /home/runwatch
USER runwatch

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["runwatch", "serve", "--host", "0.0.0.0", "--port", "8000"]
