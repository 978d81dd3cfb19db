"""Clean-up after the first sync (admin steps 8 and 9): archive the students who are not part of the sync,
and merge duplicate students with their history.

- ``unmanaged``: which students a clean-up archives (pure), its threshold, preview comparison;
- ``duplicates``: candidate pairs scored by their evidence (pure);
- ``merge``: what a merge moves (pure) and applying or undoing it in transactions;
- ``batches``: the clean-up's S3 layout, the steps of the clean-up state machine, undo.
"""
