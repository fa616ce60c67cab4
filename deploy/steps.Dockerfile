# The steps' image: what every Argo pod of a releasectl workflow runs (`python -m hera.workflows.runner
# -e workflows.steps.<step>:<fn>`), and the KServe predictor (`python -m workflows.predictor`).
# Build from the repository root:  docker build -f deploy/steps.Dockerfile -t ghcr.io/releasectl/steps:0.1.0 .
FROM python:3.11-slim

WORKDIR /opt/releasectl
COPY pyproject.toml README.md ./
COPY controller ./controller
COPY workflows ./workflows
# Parquet datasets need pyarrow: the steps get it, the controller does not.
RUN pip install --no-cache-dir '.[parquet]' && rm -rf /root/.cache

# Non-root; a read-only root works: Hera's outputs and temporary files go to /tmp (an emptyDir).
ENV HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --uid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin releasectl
USER 10001:10001
EXPOSE 8080
CMD ["python", "-m", "workflows.predictor", "--help"]
