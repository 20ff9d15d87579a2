"""The SageMaker Python SDK v2's own Predictor, through its local-mode runtime client, calls a
running `serve` as a real client: JSON, CSV and NumPy serializers and deserializers. (Only the
SDK's HTTP client is used; no AWS account or container is involved.)"""

from __future__ import annotations

import numpy as np
import pytest
import serving_helpers
from serving_helpers import Server

sagemaker = pytest.importorskip("sagemaker", reason="the SageMaker Python SDK v2 is not installed")

echo_server = serving_helpers.echo_server  # the fixture


@pytest.fixture
def predictor_for(echo_server: Server):
    import boto3
    from sagemaker.local import LocalSession
    from sagemaker.local.local_session import LocalSagemakerRuntimeClient
    from sagemaker.predictor import Predictor

    session = LocalSession(boto_session=boto3.Session(region_name="us-east-1", aws_access_key_id="testing",
                                                      aws_secret_access_key="testing"))
    session.sagemaker_runtime_client = LocalSagemakerRuntimeClient({"local": {"serving_port": echo_server.port}})

    def make(serializer, deserializer):
        return Predictor("local-endpoint", sagemaker_session=session, serializer=serializer,
                         deserializer=deserializer)

    return make


def test_sdk_json_predictor(predictor_for) -> None:
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer

    predictor = predictor_for(JSONSerializer(), JSONDeserializer())
    assert predictor.predict({"instances": [[1, 2], [3, 4]]}) == {"instances": [[1, 2], [3, 4]]}


def test_sdk_csv_predictor(predictor_for) -> None:
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.serializers import CSVSerializer

    predictor = predictor_for(CSVSerializer(), CSVDeserializer())
    assert predictor.predict([[1.5, 2], [3, 4]]) == [["1.5", "2.0"], ["3.0", "4.0"]]


def test_sdk_numpy_predictor(predictor_for) -> None:
    from sagemaker.deserializers import NumpyDeserializer
    from sagemaker.serializers import NumpySerializer

    predictor = predictor_for(NumpySerializer(), NumpyDeserializer())
    data = np.arange(12, dtype=np.float64).reshape(3, 4)
    got = predictor.predict(data)
    assert isinstance(got, np.ndarray) and got.dtype == data.dtype and (got == data).all()
