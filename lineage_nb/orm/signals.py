"""Model signals, with blinker's conventions (as in ormar and Django).

Connect per model class; receivers are called as ``receiver(sender, instance=..., **kwargs)`` inside
the write's transaction, so a receiver that raises aborts the write.

Examples:
    >>> from lineage_nb import signals
    >>> @signals.pre_save.connect_via(object)
    ... def log(sender, instance, **kwargs):
    ...     pass
"""

from __future__ import annotations

from blinker import Namespace

__all__ = [
    "post_delete",
    "post_save",
    "post_update",
    "pre_delete",
    "pre_save",
    "pre_update",
]

_signals = Namespace()

pre_save = _signals.signal("pre_save", doc="Before a record is inserted or updated by save().")
post_save = _signals.signal("post_save", doc="After save() wrote the record, before commit.")
pre_update = _signals.signal("pre_update", doc="Before update() writes the record.")
post_update = _signals.signal("post_update", doc="After update() wrote the record, before commit.")
pre_delete = _signals.signal("pre_delete", doc="Before delete() removes the record.")
post_delete = _signals.signal("post_delete", doc="After delete() removed the record, before commit.")

_internal = Namespace()
#: Internal: ``sender=session``, ``records=[...]`` after get/load/load_all read records.
records_read = _internal.signal("records_read")
#: Internal: ``sender=session``, ``model``, ``rows`` (dicts) before bulk_create inserts them.
bulk_insert = _internal.signal("bulk_insert")
#: Internal: ``sender=session``, ``model``, ``rows`` (with primary keys) after bulk_create inserted.
bulk_inserted = _internal.signal("bulk_inserted")
#: Internal: ``sender=session``, ``records=[...]`` after delete() removed their rows.
records_deleted = _internal.signal("records_deleted")
