# The pipeline image: every component on Vertex AI Pipelines, the Trainer on
# Vertex AI Training (--vertex-training), the Beam workers on Dataflow
# (--dataflow, as a custom SDK container) and Airflow's KubernetesPodOperator
# tasks (`tfxp run --node`, their cmds replacing the entrypoint) run this one image.
# Build and push:  docker build -t REGION-docker.pkg.dev/PROJECT/REPO/tfxp:TAG . && docker push ...
FROM python:3.10-slim

# Beam's worker boot program, so Dataflow can start SDK workers from this image.
# Vertex AI ignores the entrypoint: the compiled job names its own command.
COPY --from=apache/beam_python3.10_sdk:2.60.0 /opt/apache/beam /opt/apache/beam

ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Must match tfxp.pipeline.config.IMAGE_PROJECT_ROOT. Compiled jobs read package
# data (tfxp/projects/…: schema, embedded data, a project folder placed there, label
# hooks) from /pipeline/tfxp (a project elsewhere has its schema staged to the
# pipeline root by `tfxp compile`; README "Scaling out"), and give Beam
# workers --setup_file=/pipeline/setup.py. Both hold because the project is
# installed editable from here: a wheel install would put the package in
# site-packages and leave no setup.py (see config.with_project_dependency).
WORKDIR /pipeline

# The same install as `make` (see Makefile): pip version, full lock, then the
# project itself without resolving anything. Dependencies first, for layer caching.
COPY requirements.lock ./
RUN pip install --quiet "pip==24.2" && \
    pip install --quiet -r requirements.lock

COPY setup.py pyproject.toml README.md ./
COPY tfxp/ tfxp/
RUN pip install --quiet --no-deps --no-build-isolation -e . && \
    pip check && \
    tfxp --help > /dev/null

ENTRYPOINT ["/opt/apache/beam/boot"]
