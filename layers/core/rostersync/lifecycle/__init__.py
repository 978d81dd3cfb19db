"""A district's sync lifecycle (issue 12): entitlement, enable and disable, the admin told when a run
ends, a held run approved or discarded, and a whole run undone.

- ``entitlement``: which plans include sync, and whether a district may sync.
- ``district``: the district's plan and its enabled/disabled switch, with who and when (``LIFECYCLE#``
  history items), and ``status`` for ``rostersync status``.
- ``events``: the product's events (``Sync Enabled``, ``Sync Disabled``, ``District Plan Changed``) and the
  run-end events the stack publishes, as pydantic models; ``events/schemas/`` is generated from them.
- ``announce``: the run-end event of a run (detail type, counts, report link) and its publication.
- ``notify``: who a district's settings say is told about a run end, and the email they get.
- ``before_images``: what a run wrote, record by record, with the item as it was before (S3, with the run).
- ``holds``: the archives a ``threshold_exceeded`` run held, and the admin's decision on them.
- ``reversal``: the plan of an undo or an approval (pure).
"""
