"""A correction: sample A1 was misread at the instrument; this script run fixes its value."""

import lineage_nb as ln
from lab_models import Sample

ln.connect()
ln.track(__file__)
Sample.filter(name="A1").one().update(value=0.47)
ln.finish()
print("correct: A1 is now 0.47")
