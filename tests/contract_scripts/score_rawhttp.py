"""@rawhttp: run() gets the request object and may answer with an AMLResponse.

Imports the azureml.contrib paths cloud scripts use; no azureml package is installed.
POST /score?action=... picks the behaviour.
"""

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    if request.method != "POST":
        return {"method": request.method, "args": request.args.to_dict(flat=False)}
    action = request.args.get("action", "")
    if action == "upload":
        upload = request.files["file"]
        return {
            "filename": upload.filename,
            "content": upload.read().decode("utf-8"),
            "file_content_type": upload.content_type,
            "form": request.form.to_dict(flat=False),
        }
    if action == "echo":
        return AMLResponse(request.get_data(), 200, {"Content-Type": "application/octet-stream"})
    if action == "text":
        return AMLResponse("plain words", 201)
    if action == "headers":
        return AMLResponse("with headers", 200, {"X-Multi": "alpha, beta", "X-Single": "one"})
    if action == "fail":
        return AMLResponse("it broke", 500)
    if action == "json":
        return AMLResponse({"wrapped": True}, 202, json_str=True)
    if action == "none":
        return AMLResponse(None, 200)
    if action == "request-headers":
        return {"custom": request.headers.get("X-Custom-Header"), "content_type": request.content_type}
    if action == "raise":
        raise RuntimeError("raw script failed on purpose")
    return {"data": request.get_data(as_text=True), "method": request.method}
