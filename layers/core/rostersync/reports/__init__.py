"""The sync report: models (``model``) and rendering to JSON, CSV and HTML bytes (``writer``)."""
