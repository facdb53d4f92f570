"""A small quickstart-like lineage for the export and CLI tests: three runs over the test models.

``ingest.py`` creates a project and three samples; ``analysis.ipynb``-like ``analyse.py`` reads
two samples, writes measurements and updates a sample; ``broken.py`` writes one sample and ends
``errored`` (cell 3 raised).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models import Measurement, Project, Sample

import lineage_nb as ln
from lineage_nb.lineage.runs import note_cell_error


@dataclass
class Lineage:
    ingest: ln.Run
    analyse: ln.Run
    broken: ln.Run
    samples: list[Sample]
    measurements: list[Measurement]


def build_lineage(folder: Path) -> Lineage:
    """Write the three scripts to ``folder`` and run them against the connected database."""
    sources = {
        "ingest.py": "project = Project(name='soil').save()\n",
        "analyse.py": "sample = Sample.get(1)\nMeasurement(reading=1.5, sample=sample).save()\n",
        "broken.py": "Sample(name='late').save()\nraise ValueError('bad')\n",
    }
    for name, code in sources.items():
        (folder / name).write_text(code, encoding="utf-8")

    ingest = ln.track(folder / "ingest.py")
    project = Project(name="soil").save()
    samples = [Sample(name=f"s{i}", value=float(i), project=project).save() for i in range(3)]
    ln.finish()

    analyse = ln.track(folder / "analyse.py")
    first, second = Sample.get(samples[0].id), Sample.get(samples[1].id)
    measurements = [
        Measurement(reading=1.5, sample_id=first.id).save(),
        Measurement(reading=2.5, sample_id=first.id).save(),
        Measurement(reading=0.5, sample_id=second.id).save(),
    ]
    second.update(value=10.0)
    ln.finish()

    broken = ln.track(folder / "broken.py")
    Sample(name="late", value=None, project_id=project.id).save()
    note_cell_error(3)
    ln.finish("errored")
    runs = {run.id: run for run in ln.runs()}
    return Lineage(
        ingest=runs[ingest.id],
        analyse=runs[analyse.id],
        broken=runs[broken.id],
        samples=samples,
        measurements=measurements,
    )
