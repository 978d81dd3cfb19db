"""The ``rostersync`` command line: one command per thing a district admin or operator does.

Every command but ``demo`` and ``local up`` talks to a stack: a deployed one on AWS (``--stack`` with the
usual AWS profile and region) or the embedded one served by ``rostersync local up`` (``--endpoint``).
Both go through ``connect.connect``: only the endpoint differs.
"""
