// The native API (/api/v1), as the pages use it.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error_code;
  }
}

async function request(path, { text = false } = {}) {
  const response = await fetch(`/api/v1${path}`, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch { /* not JSON */ }
    throw new ApiError(response.status, body);
  }
  return text ? response.text() : response.json();
}

const enc = encodeURIComponent;

function queryString(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

export const api = {
  pipelines: () => request("/pipelines?limit=1000"),
  runs: (params) => request(`/runs${queryString(params)}`),
  run: (id) => request(`/runs/${enc(id)}?metrics=none`),
  step: (run, step) => request(`/runs/${enc(run)}/steps/${enc(step)}`),
  logs: (run, step) => request(`/runs/${enc(run)}/steps/${enc(step)}/logs`, { text: true }),
  metrics: (run) => request(`/runs/${enc(run)}/metrics`),
  series: (run, key, maxPoints = 1000) => request(`/runs/${enc(run)}/series/${enc(key)}?max_points=${maxPoints}`),
  artifacts: (params) => request(`/artifacts${queryString(params)}`),
  artifact: (key) => request(`/artifacts/${enc(key)}`),
  lineage: (key) => request(`/artifacts/${enc(key)}/lineage`),
  contentUrl: (key, download = false) => `/api/v1/artifacts/${enc(key)}/content${download ? "?download=true" : ""}`,
  models: () => request("/models?limit=1000"),
  model: (name) => request(`/models/${enc(name)}`),
  schedules: () => request("/schedules"),
  schedule: (name) => request(`/schedules/${enc(name)}`),
};

/** The MLflow API (/api/2.0/mlflow), for experiments and client-logged runs. */
async function mlflowRequest(method, path, { params, body } = {}) {
  const url = `/api/2.0/mlflow${path}${params ? queryString(params) : ""}`;
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (!response.ok) {
    let error = null;
    try { error = await response.json(); } catch { /* not JSON */ }
    throw new ApiError(response.status, error);
  }
  return response.json();
}

export const mlflow = {
  get: (path, params) => mlflowRequest("GET", `/${path}`, { params }),
  post: (path, body) => mlflowRequest("POST", `/${path}`, { body }),
  artifacts: async (path) => {
    const response = await fetch(`/api/2.0/mlflow-artifacts/artifacts${queryString({ path })}`);
    if (!response.ok) throw new ApiError(response.status, null);
    return response.json();
  },
};
