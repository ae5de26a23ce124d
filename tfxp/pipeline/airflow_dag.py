"""`tfxp compile --target airflow`: a plain Airflow DAG file, one task per node of create_pipeline.

Why not TFX's AirflowDagRunner: it runs TFX's legacy launcher through Airflow 1 import paths, and Airflow can't
be installed beside this lock (docs/scaling-out.md). Instead each task runs `tfxp run --node ID`, TFX's partial
run of that one node: its inputs from other nodes come from the previous pipeline run in the output's ML
Metadata (partial_run_utils' default base run). That is only right when the tasks run one after another, so
the DAG sets max_active_tasks=1 and max_active_runs=1; the task graph itself is create_pipeline's.

The file imports only Airflow's stable operator paths (Airflow 3 first, then Airflow 2's) and, with an image,
the cncf.kubernetes provider's KubernetesPodOperator and the kubernetes client's models.
"""

from __future__ import annotations

import datetime
import shlex
from dataclasses import dataclass

from tfxp.pipeline.runner import ExitCode

# `tfxp run`'s exit code for a model not blessed (from the Pusher's task): a normal outcome, not a fault to
# retry, so the task is skipped (Airflow's skip_on_exit_code) and the MobilePusher after it too.
NOT_BLESSED = int(ExitCode.NOT_BLESSED)


@dataclass(frozen=True)
class AirflowSettings:
    """What the DAG file schedules and how its tasks run.

    schedule: an Airflow schedule (cron expression or preset such as "@daily"); None = runs only when triggered.
    retries, retry_delay_minutes: Airflow's per-task retries of a failed `tfxp run --node` (a killed worker,
        a full disk); a rerun of a finished node is cached by TFX.
    image: None = BashOperator tasks calling `tfxp_command` on the Airflow worker; else KubernetesPodOperator
        pods of this image in `namespace`, with the PersistentVolumeClaim `volume_claim` mounted at the pipeline
        root (ML Metadata's SQLite file and every artifact must be shared by the pods).
    """

    schedule: str | None = "@daily"
    retries: int = 2
    retry_delay_minutes: float = 5.0
    image: str | None = None
    namespace: str = "default"
    volume_claim: str | None = None
    tfxp_command: str = "tfxp"
    start_date: datetime.date = datetime.date(2026, 1, 1)


def run_arguments(project: str, output: str, name: str, data: str | None, train_steps: int) -> list[str]:
    """`tfxp run`'s arguments every task shares (the task adds `--node ID`)."""
    arguments = ["run", "--project", project, "--output", output, "--name", name, "--train-steps", str(train_steps)]
    return arguments + (["--data", data] if data is not None else [])


def dag_source(dag_id: str, nodes: dict[str, tuple[str, ...]], arguments: list[str], settings: AirflowSettings) -> str:
    """The DAG file's Python source.

    nodes: create_pipeline's node id -> upstream node ids (tfxp.pipeline.pipeline.node_graph), in run order.
    arguments: `tfxp run`'s arguments without `--node` (run_arguments).
    """
    header = _HEADER.format(dag_id=dag_id, kind="KubernetesPodOperator pods" if settings.image else "BashOperator")
    imports = _POD_IMPORTS if settings.image else _BASH_IMPORTS
    facts = _FACTS.format(
        dag_id=repr(dag_id),
        nodes=_nodes_literal(nodes),
        arguments=repr(arguments),
        schedule=repr(settings.schedule),
        start=repr(settings.start_date.isoformat()),
        retries=settings.retries,
        delay=settings.retry_delay_minutes,
        skip=NOT_BLESSED,
    )
    if settings.image:
        task = _POD_TASK.format(
            image=repr(settings.image),
            namespace=repr(settings.namespace),
            claim=repr(settings.volume_claim),
            root=repr(arguments[arguments.index("--output") + 1]),
        )
    else:
        task = _BASH_TASK.format(command=repr(shlex.split(settings.tfxp_command)))
    return header + imports + facts + task + _GRAPH


def _nodes_literal(nodes: dict[str, tuple[str, ...]]) -> str:
    lines = [f"    {node!r}: {list(upstream)!r}," for node, upstream in nodes.items()]
    return "{\n" + "\n".join(lines) + "\n}"


_HEADER = '''"""Airflow DAG {dag_id!r}: the tfxp pipeline, one task per node ({kind}).

Written by `tfxp compile --target airflow`; compile again rather than edit. Each task runs
`tfxp run --node ID` (TFX's partial run): the node's inputs come from the previous task's run in the
output's ML Metadata, so tasks run one at a time (max_active_tasks=1, max_active_runs=1).
Exit 4 (model not blessed, from the Pusher) skips the pushers; exit 3 (bad data) fails the run.
Needs Airflow >= 2.6 (BashOperator's skip_on_exit_code) or 3.x.
"""

import datetime
import shlex
'''

_BASH_IMPORTS = """
try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator
"""

_POD_IMPORTS = """
try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s
"""

_FACTS = """
DAG_ID = {dag_id}
# create_pipeline's nodes, in the order tfxp runs them -> the nodes each takes inputs from.
NODES = {nodes}
RUN_ARGUMENTS = {arguments}
NOT_BLESSED = {skip}

dag = DAG(
    dag_id=DAG_ID,
    schedule={schedule},
    start_date=datetime.datetime.fromisoformat({start}).replace(tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=1,
    default_args={{"retries": {retries}, "retry_delay": datetime.timedelta(minutes={delay})}},
    tags=["tfxp"],
)
"""

_BASH_TASK = """
TFXP = {command}


def node_task(node):
    command = shlex.join([*TFXP, *RUN_ARGUMENTS, "--node", node])
    return BashOperator(task_id=node, bash_command=command, skip_on_exit_code=NOT_BLESSED, dag=dag)
"""

_POD_TASK = """
IMAGE = {image}
NAMESPACE = {namespace}
VOLUME_CLAIM = {claim}
PIPELINE_ROOT = {root}


def node_task(node):
    return KubernetesPodOperator(
        task_id=node,
        name="tfxp-" + node.lower().replace("_", "-"),
        namespace=NAMESPACE,
        image=IMAGE,
        cmds=["tfxp"],
        arguments=[*RUN_ARGUMENTS, "--node", node],
        volumes=[
            k8s.V1Volume(
                name="pipeline-root",
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=VOLUME_CLAIM),
            )
        ],
        volume_mounts=[k8s.V1VolumeMount(name="pipeline-root", mount_path=PIPELINE_ROOT)],
        skip_on_exit_code=NOT_BLESSED,
        get_logs=True,
        dag=dag,
    )
"""

_GRAPH = """

tasks = {node: node_task(node) for node in NODES}
for node, upstream in NODES.items():
    for parent in upstream:
        tasks[parent] >> tasks[node]
"""
