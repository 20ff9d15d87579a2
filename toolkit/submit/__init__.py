"""``toolkit submit``: the same job as ``toolkit local`` runs, sent to SageMaker with boto3 alone.

The request is built by the emulator's request model (toolkit/local/request.py, procrequest.py),
its S3 locations come from toolkit/plan.py, and the code is packaged as the SDK v2 packages it.
"""
