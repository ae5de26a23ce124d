"""A minimal stand-in of the Airflow API a `tfxp compile --target airflow` DAG file uses (Airflow can't be
installed beside this lock: docs/scaling-out.md).

`install(folder, version)` writes `airflow` (and `kubernetes`) packages into `folder` with Airflow 2's import
paths (`airflow.DAG`, `airflow.operators.bash`) or Airflow 3's (`airflow.sdk`,
`airflow.providers.standard.operators.bash`) only, so a file that imports a path the version lacks fails.
The classes take exactly the keyword arguments Airflow's own take (their signatures, keyword-only, as in
Airflow 2.10 / 3.1 and the cncf.kubernetes provider 10), so a misspelled argument fails too, and `DAG.run()`
executes BashOperator commands as Airflow's scheduler would with max_active_tasks=1: one ready task at a time,
a task whose upstream failed or was skipped not run (trigger rule all_success), `skip_on_exit_code` skipping,
`retries` retrying.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections.abc import Container
from pathlib import Path

_PACKAGES = {
    2: {
        "airflow/__init__.py": "from airflow_standin import DAG\n",
        "airflow/operators/__init__.py": "",
        "airflow/operators/bash.py": "from airflow_standin import BashOperator\n",
    },
    3: {
        "airflow/__init__.py": "",
        "airflow/sdk.py": "from airflow_standin import DAG\n",
        "airflow/providers/standard/__init__.py": "",
        "airflow/providers/standard/operators/__init__.py": "",
        "airflow/providers/standard/operators/bash.py": "from airflow_standin import BashOperator\n",
    },
}
_KUBERNETES = {
    "airflow/providers/__init__.py": "",
    "airflow/providers/cncf/__init__.py": "",
    "airflow/providers/cncf/kubernetes/__init__.py": "",
    "airflow/providers/cncf/kubernetes/operators/__init__.py": "",
    "airflow/providers/cncf/kubernetes/operators/pod.py": "from airflow_standin import KubernetesPodOperator\n",
    "kubernetes/__init__.py": "",
    "kubernetes/client/__init__.py": "import airflow_standin as models\n",
}


_TOP_LEVEL = ("airflow", "kubernetes")


def install(folder: Path, version: int) -> Path:
    """Writes the stand-in packages of Airflow `version` (2 or 3) into `folder`; returns it (for sys.path)."""
    files = {**_PACKAGES[version], **_KUBERNETES}
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def load_dag(dag_file: Path, standin: Path):
    """Executes the DAG file with the stand-in first on sys.path; returns its module namespace's DAG."""

    def stand_in_modules() -> dict:
        return {name: module for name, module in sys.modules.items() if name.split(".")[0] in _TOP_LEVEL}

    real = stand_in_modules()  # e.g. the kubernetes client kfp imports: put back afterwards
    for name in real:
        del sys.modules[name]
    sys.path.insert(0, str(standin))
    try:
        namespace: dict = {"__name__": "dag_file"}
        exec(compile(dag_file.read_text(), str(dag_file), "exec"), namespace)
    finally:
        sys.path.remove(str(standin))
        for name in stand_in_modules():
            del sys.modules[name]
        sys.modules.update(real)
    dags = [value for value in namespace.values() if isinstance(value, DAG)]
    assert len(dags) == 1, f"{dag_file} defines {len(dags)} DAGs"
    return dags[0]


class DAG:
    def __init__(
        self,
        dag_id: str,
        *,
        description: str | None = None,
        schedule=None,
        start_date: datetime.datetime | None = None,
        end_date: datetime.datetime | None = None,
        default_args: dict | None = None,
        max_active_tasks: int = 16,
        max_active_runs: int = 16,
        catchup: bool = False,
        dagrun_timeout: datetime.timedelta | None = None,
        tags: list[str] | None = None,
        params: dict | None = None,
        doc_md: str | None = None,
    ):
        if start_date is not None and start_date.tzinfo is None:
            raise ValueError("start_date must be timezone-aware")  # Airflow warns and assumes UTC; we insist
        self.dag_id, self.schedule, self.start_date = dag_id, schedule, start_date
        self.default_args = default_args or {}
        self.max_active_tasks, self.max_active_runs, self.catchup, self.tags = (
            max_active_tasks,
            max_active_runs,
            catchup,
            tags,
        )
        self.tasks: dict[str, BaseOperator] = {}

    def edges(self) -> set[tuple[str, str]]:
        return {(parent, task.task_id) for task in self.tasks.values() for parent in task.upstream_task_ids}

    def run(self, order=sorted) -> dict[str, str]:
        """One DAG run: task id -> success | failed | skipped | upstream_failed. `order` picks among the
        ready tasks (Airflow's own order is not create_pipeline's)."""
        states: dict[str, str] = {}
        while len(states) < len(self.tasks):
            ready = [
                t
                for t in self.tasks.values()
                if t.task_id not in states and all(p in states for p in t.upstream_task_ids)
            ]
            task = self.tasks[order([t.task_id for t in ready])[0]]
            upstream = {states[p] for p in task.upstream_task_ids}
            if upstream - {"success"}:
                states[task.task_id] = "upstream_failed" if upstream & {"failed", "upstream_failed"} else "skipped"
                continue
            states[task.task_id] = task.run_with_retries()
        return states


class BaseOperator:
    def __init__(
        self,
        *,
        task_id: str,
        dag: DAG | None = None,
        retries: int | None = None,
        retry_delay: datetime.timedelta | None = None,
        execution_timeout: datetime.timedelta | None = None,
        trigger_rule: str = "all_success",
        pool: str | None = None,
        queue: str | None = None,
        doc_md: str | None = None,
        on_retry_callback=None,
    ):
        assert dag is not None, "the stand-in needs dag= (or a `with DAG` block, which the file does not use)"
        if task_id in dag.tasks:
            raise ValueError(f"duplicate task id {task_id}")
        self.task_id, self.dag = task_id, dag
        self.retries = retries if retries is not None else dag.default_args.get("retries", 0)
        self.upstream_task_ids: set[str] = set()
        self.attempts = 0
        self.on_retry_callback = on_retry_callback
        dag.tasks[task_id] = self

    def __rshift__(self, other: BaseOperator) -> BaseOperator:
        other.upstream_task_ids.add(self.task_id)
        return other

    def run_with_retries(self) -> str:
        for attempt in range(self.retries + 1):
            if attempt and self.on_retry_callback is not None:
                self.on_retry_callback({"task": self})
            self.attempts += 1
            state = self.execute()
            if state != "failed":
                return state
        return "failed"

    def execute(self) -> str:
        raise NotImplementedError


def _skips(skip_on_exit_code: int | Container[int] | None) -> Container[int]:
    if skip_on_exit_code is None:
        return ()
    return (skip_on_exit_code,) if isinstance(skip_on_exit_code, int) else skip_on_exit_code


class BashOperator(BaseOperator):
    def __init__(
        self,
        *,
        bash_command: str,
        env: dict[str, str] | None = None,
        append_env: bool = False,
        output_encoding: str = "utf-8",
        skip_on_exit_code: int | Container[int] | None = 99,
        cwd: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if "{{" in bash_command or "{%" in bash_command or "{#" in bash_command:
            raise ValueError(f"Airflow would render {bash_command!r} as a Jinja template")
        self.bash_command, self.env, self.skip = bash_command, env, _skips(skip_on_exit_code)
        self.exit_codes: list[int] = []

    def execute(self) -> str:
        done = subprocess.run(["bash", "-c", self.bash_command], env=self.env, capture_output=True, text=True)
        self.exit_codes.append(done.returncode)
        self.output = done.stdout + done.stderr
        if done.returncode == 0:
            return "success"
        return "skipped" if done.returncode in self.skip else "failed"


class KubernetesPodOperator(BaseOperator):
    def __init__(
        self,
        *,
        image: str,
        name: str | None = None,
        namespace: str | None = None,
        cmds: list[str] | None = None,
        arguments: list[str] | None = None,
        volumes: list | None = None,
        volume_mounts: list | None = None,
        env_vars: list | None = None,
        container_resources=None,
        service_account_name: str | None = None,
        skip_on_exit_code: int | Container[int] | None = None,
        get_logs: bool = True,
        on_finish_action: str = "delete_pod",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image, self.name, self.namespace, self.cmds, self.arguments = image, name, namespace, cmds, arguments
        self.volumes, self.volume_mounts, self.skip = volumes or [], volume_mounts or [], _skips(skip_on_exit_code)


# kubernetes.client.models: the three the DAG file builds.
class V1Volume:
    def __init__(self, *, name: str, persistent_volume_claim=None):
        self.name, self.persistent_volume_claim = name, persistent_volume_claim


class V1PersistentVolumeClaimVolumeSource:
    def __init__(self, *, claim_name: str, read_only: bool | None = None):
        self.claim_name = claim_name


class V1VolumeMount:
    def __init__(self, *, name: str, mount_path: str, read_only: bool | None = None, sub_path: str | None = None):
        self.name, self.mount_path = name, mount_path
