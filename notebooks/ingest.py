"""Ingest: the lab's raw measurements, written by a script run of its own.

Connects to ``LINEAGE_NB_DATABASE_URL`` (or ``./lineage.db``) like the notebook does. Run it again
and it brings the samples back to the instrument's values (an unchanged value writes nothing).
"""

import lineage_nb as ln
from lab_models import Project, Sample

ln.connect()
ln.get_database().create_all()
ln.track(__file__)
soil = Project.filter(name="Soil survey").first() or Project(name="Soil survey").save()
for name, value in [("A1", 0.42), ("B7", 1.30), ("C3", 0.88)]:
    sample = Sample.filter(name=name, project_id=soil.id).first()
    if sample is None:
        Sample(name=name, value=value, project=soil).save()
    else:
        sample.update(value=value)
ln.finish()
print("ingest: the project and its 3 samples are in place")
