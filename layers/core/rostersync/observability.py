"""Logger, Tracer and Metrics, created once. Service name and log level come from template Globals.

Logs carry ids and counts only: never names, emails, phones or birth dates.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace="rostersync")
