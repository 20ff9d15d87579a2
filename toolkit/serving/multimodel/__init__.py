"""Multi-model endpoints (SAGEMAKER_MULTI_MODEL=true): the SageMaker MME container API in pure Python.

- ``app``: the WSGI app each worker serves (the /models routes; invocations take the single-model path)
- ``worker``: a worker's registry of loaded models and the thread that carries out load/unload commands
- ``control``: the supervisor's thread that coordinates every load and unload across all workers
- ``links``: the socketpairs between supervisor and workers (JSON lines)
- ``isolation``: importing each model's code so that same-named modules of two models do not mix
- ``memory``: memory available under the cgroup limit, and returning freed memory to the system
"""
