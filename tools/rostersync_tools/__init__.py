"""The tools around the rostersync runtime: the command line, the embedded local stack, the provider
simulator, converters and synthetic districts. They depend on the runtime package (``rostersync``) and are
never imported by it, nor shipped in the Lambda layer."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
