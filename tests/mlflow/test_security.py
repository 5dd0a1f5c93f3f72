"""The server's request policy: Host and Origin checks, JSON writes, the
token for reads. Real HTTP against `weft server`."""
import pytest
import requests
from mlflow.tracking import MlflowClient

from conftest import TOKEN


def experiments(url, **kw):
    resp = requests.get(f"{url}/api/2.0/mlflow/experiments/search", params={"max_results": 1000}, timeout=10, **kw)
    resp.raise_for_status()
    return sorted(e["name"] for e in resp.json().get("experiments", []))


def test_cross_site_and_rebinding_requests_change_nothing(weft_server):
    before = experiments(weft_server)
    create = f"{weft_server}/api/2.0/mlflow/experiments/create"
    body = '{"name": "csrf"}'
    refused = [
        # A form a foreign page posts as a "simple request": no preflight.
        requests.post(create, data=body, headers={"Content-Type": "text/plain", "Origin": "https://evil.example"}, timeout=10),
        # The same from a page on this machine still needs a JSON body type.
        requests.post(create, data=body, headers={"Content-Type": "text/plain"}, timeout=10),
        requests.post(create, data=body, timeout=10),
        # JSON, but from a foreign origin.
        requests.post(create, data=body, headers={"Content-Type": "application/json", "Origin": "https://evil.example"}, timeout=10),
        # DNS rebinding: a foreign name that resolves to 127.0.0.1.
        requests.post(create, data=body, headers={"Content-Type": "application/json", "Host": "evil.example:5000"}, timeout=10),
    ]
    for resp in refused:
        assert 400 <= resp.status_code < 500, (resp.request.headers, resp.text)
        assert resp.json()["error_code"] in ("PERMISSION_DENIED", "INVALID_PARAMETER_VALUE"), resp.text
    assert [r.status_code for r in refused[3:]] == [403, 403]
    # Reads under a foreign Host are refused too; health is not.
    assert requests.get(f"{weft_server}/api/2.0/mlflow/experiments/search", headers={"Host": "evil.example"}, timeout=10).status_code == 403
    assert requests.get(f"{weft_server}/health", headers={"Host": "evil.example"}, timeout=10).ok
    assert experiments(weft_server) == before, "a refused request changed nothing"
    # The client itself, and a loopback origin, are fine.
    MlflowClient().create_experiment("fine")
    ok = requests.post(create, json={"name": "from-localhost"}, headers={"Origin": "http://localhost:3000"}, timeout=10)
    assert ok.ok, ok.text
    assert experiments(weft_server) == sorted(before + ["fine", "from-localhost"])


@pytest.mark.server_args("--allowed-hosts", "weft.internal:*,127.0.0.1:*", "--cors-allowed-origins", "https://*.example.com")
def test_allowed_hosts_and_origins_are_configurable(weft_server):
    port = weft_server.rsplit(":", 1)[1]
    create = f"{weft_server}/api/2.0/mlflow/experiments/create"
    assert requests.get(f"{weft_server}/api/2.0/mlflow/experiments/search", headers={"Host": f"weft.internal:{port}"}, timeout=10).ok
    assert requests.get(f"{weft_server}/api/2.0/mlflow/experiments/search", headers={"Host": f"localhost:{port}"}, timeout=10).status_code == 403
    assert requests.post(create, json={"name": "a"}, headers={"Origin": "https://app.example.com"}, timeout=10).ok
    assert requests.post(create, json={"name": "b"}, headers={"Origin": "https://example.org"}, timeout=10).status_code == 403


@pytest.mark.token
@pytest.mark.server_args("--token-for-reads")
def test_token_for_reads(weft_server):
    search = f"{weft_server}/api/2.0/mlflow/experiments/search"
    assert requests.get(search, timeout=10).status_code == 401
    assert requests.get(search, headers={"Authorization": "Bearer wrong-token-0123456789"}, timeout=10).status_code == 403
    assert requests.get(search, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).ok
    assert requests.get(f"{weft_server}/health", timeout=10).ok
    # The client sends MLFLOW_TRACKING_TOKEN (set by the fixture).
    assert MlflowClient().get_experiment("0").name == "Default"
