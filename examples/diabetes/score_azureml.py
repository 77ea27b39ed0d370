"""Azure ML online endpoint entry script for a model trained by train.py.

Azure ML imports this file from the code asset (the deploy stage's `code` folder, this one),
calls init() once with AZUREML_MODEL_DIR naming where the registered model's files are, and
run(raw) with each request's body. It takes the same requests as score.py, which it reuses:

  {"data": [[10 numbers], ...]}  or  {"inputs": [{"age": .., ...}, ...]}  ->  {"predictions": [...]}

A malformed request gets status 400 with {"error": ...}; Azure ML passes it on as 424 with the
header ms-azureml-model-error-statuscode: 400, which mlstage's smoke test reads.
"""
import json
import os

from score import MAX_ROWS, load, rows_from

try:  # Azure ML's inference server (azureml-inference-server-http), newer and older homes
    from azureml_inference_server_http.api.aml_response import AMLResponse
except ImportError:
    try:
        from azureml.contrib.services.aml_response import AMLResponse
    except ImportError:  # elsewhere, e.g. when this file is tried by hand
        AMLResponse = None

_model = None


def _model_dir(root):
    """The folder holding model.pkl and model.json, wherever the registration put it."""
    for folder, _, files in sorted(os.walk(root)):
        if "model.pkl" in files and "model.json" in files:
            return folder
    raise FileNotFoundError(f"no model.pkl with model.json under {root}")


def init():
    global _model
    _model = load(_model_dir(os.environ.get("AZUREML_MODEL_DIR", ".")))


def _answer(status, doc):
    if AMLResponse is None:
        return doc if status == 200 else {"status": status, **doc}
    return AMLResponse(json.dumps(doc), status)


def run(raw_data):
    est, meta = _model
    try:
        body = json.loads(raw_data) if isinstance(raw_data, (str, bytes)) else raw_data
        rows = rows_from(body, meta["features"])
        if len(rows) > MAX_ROWS:
            raise ValueError(f"at most {MAX_ROWS} rows per request")
    except (ValueError, TypeError) as e:
        return _answer(400, {"error": str(e)})
    return _answer(200, {"predictions": [round(float(p), 4) for p in est.predict(rows)]})
