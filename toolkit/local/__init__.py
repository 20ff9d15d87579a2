"""The platform emulator: ``toolkit local train|serve|transform`` and ``toolkit package``.

It plays SageMaker's side of the container contract on one machine: it lays out /opt/ml,
moves data between S3 (or local folders) and the job, runs ``train`` in-process or ``IMAGE
train`` in a container engine, and puts every artifact where the service puts it.
"""
