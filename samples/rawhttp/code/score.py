"""Scoring script that takes the raw HTTP request instead of a parsed body.

With @rawhttp the server hands run() the request object itself (the werkzeug
request API: method, args, files, form, headers, get_data()), so the script can
read file uploads and query strings and choose its own status code.
"""

import hashlib
import json
import logging
import os

# These modules come from the scoring server, not from a pip package of their own.
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

logger = logging.getLogger(__name__)
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

max_file_bytes = None


def init():
    """The "model" here is just a size limit, read once per worker."""
    global max_file_bytes
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "upload_limits.json")
    with open(path) as f:
        max_file_bytes = int(json.load(f)["max_file_bytes"])
    logger.info("accepting files up to %d bytes", max_file_bytes)


def digest(content):
    return {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}


@rawhttp
def run(request: AMLRequest):
    if request.method == "GET":
        # GET /score?greeting=hi -> {"method": "GET", "args": {"greeting": "hi"}}
        return {"method": "GET", "args": request.args.to_dict()}

    if request.method == "POST":
        if request.files:
            # multipart/form-data: curl -F file=@sample-upload.csv <scoring_uri>
            files = []
            for field, upload in request.files.items(multi=True):
                content = upload.read()
                if len(content) > max_file_bytes:
                    return AMLResponse(f"{upload.filename} is over {max_file_bytes} bytes", 413)
                files.append({"field": field, "name": upload.filename, **digest(content)})
            logger.info("received %d file(s)", len(files))
            # A dict is turned into JSON by the server, like any non-raw run().
            return {"files": files, "form": request.form.to_dict()}

        # Any other body (e.g. sample-request.json): describe the bytes as received.
        body = request.get_data()
        logger.info("received a %d-byte %s body", len(body), request.content_type)
        return {"body": {"content_type": request.content_type, **digest(body)}}

    # Choose the status code and headers yourself with AMLResponse.
    return AMLResponse("method not allowed", 405, {"Allow": "GET, POST"})
