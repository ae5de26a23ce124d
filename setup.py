"""Taxi TFX pipeline: raw CSV -> validated, evaluated model -> TF Serving and TFLite.

Ranges here are what the code supports; `requirements.lock` pins the exact,
tested set (installed by `make`).
"""

from setuptools import find_packages, setup

setup(
    name="tfxp",
    version="0.1.0",
    description="A production TFX pipeline: CSV to a validated, evaluated model on TF Serving and TFLite",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["tfxp", "tfxp.*"]),
    # The embedded projects (tfxp/projects/<name>/: project.yaml, schema.pbtxt, data/*.csv, rows, a
    # label hook) ship in the wheel, at any depth: `tfxp run` finds them beside the installed code
    # (tfxp.pipeline.config.PACKAGE_ROOT), from any directory. "*.py" keeps a label hook that sits in
    # a folder without __init__.py, which find_packages skips.
    # tfxp/mobile/model_spec.schema.json: the JSON Schema of model_spec.json (tfxp.mobile.model_spec.SCHEMA_FILE).
    package_data={
        "tfxp.projects": [f"**/*.{ext}" for ext in ("csv", "pbtxt", "yaml", "jsonl", "py")],
        "tfxp.mobile": ["model_spec.schema.json"],
    },
    install_requires=[
        "tfx==1.16.0",
        "tensorflow>=2.16.2,<2.17",
        "tf_keras>=2.16,<2.17",
        "apache-beam[gcp]==2.60.0",
        "tensorflow-transform>=1.16,<1.17",
        "tensorflow-model-analysis>=0.47,<0.48",
        "tensorflow-data-validation>=1.16,<1.17",
        "ml-metadata>=1.16,<1.17",
        "tensorflow-serving-api>=2.16,<2.17",
        "click>=8.1,<9",
        "aiohttp>=3.9,<4",
        "async-timeout>=4,<6; python_version < '3.11'",
        "grpcio>=1.60,<2",
        "grpcio-health-checking>=1.48,<2",
        "prometheus_client>=0.17,<1",
        "requests>=2.31,<3",
        "tabulate>=0.9,<1",
        "PyYAML>=6,<7",
    ],
    extras_require={
        "dev": ["pytest>=8,<10", "psutil>=5.9", "ruff>=0.17,<0.18", "mypy>=1.20,<2"],
        "vertex": ["kfp==2.5.0", "kfp-pipeline-spec==0.2.2", "google-cloud-aiplatform>=1.40"],
        # Both TFLite interpreters: LiteRT (preferred; wheels for Python >= 3.12 and macOS arm64) and
        # tflite-runtime (2.14 is its last release); tfxp.mobile.runtime uses whichever is installed.
        "mobile": ["ai-edge-litert==2.3.0", "tflite-runtime==2.14.0"],
        "bench": ["matplotlib>=3.8,<3.11"],
    },
    entry_points={"console_scripts": ["tfxp=tfxp.cli:main"]},
)
