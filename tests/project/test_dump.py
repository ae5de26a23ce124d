"""Writing a project spec (tfxp/project/dump.py): YAML that reads back as the same project."""

from __future__ import annotations

from project_data import SPEC, write_project

from tfxp import project as P


def test_dump_reads_back_the_same_project_with_awkward_values(tmp_path):
    """Names YAML would read as booleans, numbers or other syntax are quoted; notes are comments."""
    names = ["yes", "1", "a: b", "x, y", "#tag", "naïve", "null"]
    spec = {
        "name": "awkward",
        "label": {"column": "on", "task": "multiclass", "classes": ["no", "1.0", "[x]", "a,b"]},
        # Names TensorFlow refuses as model inputs can still be validated (ignored) columns.
        "features": [
            {
                "name": n,
                "dtype": "string",
                "kind": "vocabulary" if P.TF_NAME.fullmatch(n) else "ignored",
                "required": True,
            }
            for n in names
        ],
        "slices": ["yes", "null"],
        "thresholds": [{"metric": "SparseCategoricalAccuracy", "bound": 0.25, "max_change": 0.02}],
    }
    project = P.from_dict(spec, dir=tmp_path)
    out = tmp_path / "copy" / "project.yaml"
    P.dump(
        project,
        out,
        header="Written by a test\nsecond line",
        notes={"features.yes": "a note", "label": "x " * 80, "thresholds.SparseCategoricalAccuracy": "gate"},
    )
    text = out.read_text()
    assert text.startswith("# Written by a test\n# second line\n")
    assert "  - name: 'yes'  # a note\n" in text
    import yaml

    back = P.from_dict(yaml.safe_load(text), dir=out.parent)
    assert back == project


def test_dump_writes_paths_relative_to_the_project(tmp_path):
    folder = write_project(tmp_path)
    (folder / "label.py").write_text("def make(inputs):\n    return inputs['y']\n")
    spec = SPEC.replace("  classes: [a, b, c]\n", "  classes: [a, b, c]\n  hook: label.py:make\n")
    (folder / "project.yaml").write_text(spec)
    project = P.load(folder)
    assert project.label.hook == f"{folder.resolve() / 'label.py'}:make"
    P.dump(project, folder / "project.yaml")
    text = (folder / "project.yaml").read_text()
    assert "data: data/demo.csv\n" in text and "hook: label.py:make\n" in text
    assert P.load(folder) == project
