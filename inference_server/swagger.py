"""The swagger documents served at ``/swagger.json?version=2|3|3.1``.

A user's ``swagger.json``/``swagger2.json``/``swagger3.json``/``swagger3.1.json`` in the app root
(or next to the script) wins; otherwise the document is generated, with the input and output
schemas that inference-schema's decorators declare on run().
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

logger = logging.getLogger("azmlinfsrv.swagger")

# version -> (aliases a client may ask for, versions inference-schema names, user files to look for)
VERSIONS = {
    "2": ({"2", "2.0"}, "swagger2.json", "swagger.json"),
    "3": ({"3", "3.0"}, "swagger3.json"),
    "3.1": ({"3.1"}, "swagger3.1.json"),
}
VALID = {alias for aliases, *_ in VERSIONS.values() for alias in aliases}


class SwaggerError(Exception):
    pass


def _error_schema() -> dict:
    return {"type": "object", "properties": {"message": {"type": "string"}}}


def _info() -> dict:
    name = os.environ.get("SERVICE_NAME", "ML service")
    return {"title": name,
            "description": f"API specification for the Azure Machine Learning service {name}",
            "version": os.environ.get("SERVICE_VERSION", "1.0")}


def _prefix() -> str:
    prefix = os.environ.get("SERVICE_PATH_PREFIX", "")
    return f"/{prefix.strip('/')}" if prefix else ""


_BEARER = {"type": "apiKey", "name": "Authorization", "in": "header", "description": "For example: Bearer abc123"}
_HEALTH_DOC = "Simple health check endpoint to ensure the service is up at any given point."
_HEALTH_OK = "If service is up and running, this response will be returned with the content 'Healthy'"
_SCORE_DOC = "Run web service's model and get the prediction output"
_SCORE_IN = "The input payload for executing the real-time machine learning service."
_SCORE_OK = "The service processed the input correctly and provided a result prediction, if applicable."
_FAILED = "The service failed to execute due to an error."


def _swagger2(input_schema: dict, output_schema: dict) -> dict:
    error = {"description": _FAILED, "schema": {"$ref": "#/definitions/ErrorResponse"}}
    p = _prefix()
    return {
        "swagger": "2.0", "info": _info(), "schemes": ["https"],
        "consumes": ["application/json"], "produces": ["application/json"],
        "securityDefinitions": {"Bearer": _BEARER},
        "paths": {
            f"{p}/": {"get": {
                "operationId": "ServiceHealthCheck", "description": _HEALTH_DOC,
                "responses": {"200": {"description": _HEALTH_OK, "schema": {"type": "string"},
                                      "examples": {"application/json": "Healthy"}},
                              "default": error}}},
            f"{p}/score": {"post": {
                "operationId": "RunMLService", "description": _SCORE_DOC, "security": [{"Bearer": []}],
                "parameters": [{"name": "serviceInputPayload", "in": "body", "description": _SCORE_IN,
                                "schema": {"$ref": "#/definitions/ServiceInput"}}],
                "responses": {"200": {"description": _SCORE_OK, "schema": {"$ref": "#/definitions/ServiceOutput"}},
                              "default": error}}},
            f"{p}/swagger.json": {"get": {
                "operationId": "GetSwaggerSpec", "description": "Get the Swagger specification.",
                "parameters": [{"name": "version", "in": "query", "required": False, "type": "integer",
                                "enum": [2, 3]}],
                "responses": {"200": {"description": "The Swagger specification.", "schema": {"type": "string"}},
                              "default": error}}},
        },
        "definitions": {"ServiceInput": input_schema, "ServiceOutput": output_schema,
                        "ErrorResponse": _error_schema()},
    }


def _openapi3(input_schema: dict, output_schema: dict, version: str) -> dict:
    def json_body(ref: str) -> dict:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}

    error = {"description": _FAILED, "content": json_body("ErrorResponse")}
    p = _prefix()
    return {
        "openapi": version, "info": _info(), "security": [{"Bearer": []}],
        "paths": {
            f"{p}/": {"get": {
                "operationId": "ServiceHealthCheck", "description": _HEALTH_DOC,
                "responses": {"200": {"description": _HEALTH_OK, "content": {
                    "text/plain": {"schema": {"type": "string", "example": "Healthy"}}}},
                    "default": error}}},
            f"{p}/score": {"post": {
                "operationId": "RunMLService", "description": _SCORE_DOC, "security": [{"Bearer": []}],
                "requestBody": {"description": _SCORE_IN, "content": json_body("ServiceInput")},
                "responses": {"200": {"description": _SCORE_OK, "content": json_body("ServiceOutput")},
                              "default": error}}},
            f"{p}/swagger.json": {"get": {
                "operationId": "GetSwaggerSpec", "description": "Get the Swagger specification.",
                "parameters": [{"name": "version", "in": "query", "required": False,
                                "schema": {"type": "integer", "enum": [2, 3]}}],
                "responses": {"200": {"description": "The Swagger specification.",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "default": error}}},
        },
        "components": {"schemas": {"ServiceInput": input_schema, "ServiceOutput": output_schema,
                                   "ErrorResponse": _error_schema()},
                       "securitySchemes": {"Bearer": _BEARER}},
    }


class Swagger:
    """The documents for one loaded script, built once per worker."""

    def __init__(self, run, search_dirs: list[str]):
        self.documents: dict[str, dict] = {}
        schema_util = sys.modules.get("inference_schema.schema_util")
        decorated = bool(schema_util and schema_util.is_schema_decorated(run))
        supported_by_run = set(schema_util.get_supported_versions(run)) if schema_util else {"2.0", "3.0", "3.1"}
        skipped = []
        for version, (aliases, *files) in VERSIONS.items():
            document = self._user_document(version, files, search_dirs)
            if document is None and aliases & supported_by_run:
                document = self._generate(version, run, schema_util if decorated else None)
            if document is None:
                skipped.append(version)
                continue
            for alias in aliases:
                self.documents[alias] = document
        self.supported = sorted(v for v in VERSIONS if v not in skipped)
        if self.supported and skipped:
            logger.info(f"Swaggers are prepared for versions [{', '.join(self.supported)}] "
                        f"and skipped for versions [{', '.join(sorted(skipped))}].")
        elif self.supported:
            logger.info(f"Swaggers are prepared for the following versions: [{', '.join(self.supported)}].")
        else:
            logger.info("No swagger is prepared.")

    @staticmethod
    def _user_document(version: str, files: list[str], search_dirs: list[str]) -> dict | None:
        for directory in search_dirs:
            for filename in files:
                path = os.path.join(directory, filename)
                if os.path.isfile(path):
                    with open(path, encoding="utf-8") as f:
                        document = json.load(f)
                    logger.info(f"Loaded user's swagger file for version [{version}] from {path}")
                    return document
        return None

    @staticmethod
    def _generate(version: str, run, schema_util) -> dict:
        if schema_util is not None:
            input_schema: Any = schema_util.get_input_schema(run)
            output_schema: Any = schema_util.get_output_schema(run)
        else:
            input_schema, output_schema = {"type": "object", "example": {}}, {"type": "object", "example": {}}
        if version == "2":
            return _swagger2(input_schema, output_schema)
        return _openapi3(input_schema, output_schema, "3.0.3" if version == "3" else "3.1.0")

    def get(self, version: str) -> dict:
        if version not in VALID:
            raise SwaggerError(f"Swagger version [{version}] is not valid. "
                               f"Supported versions: [{', '.join(self.supported)}].")
        document = self.documents.get(version)
        if not document:
            raise SwaggerError(f"Swagger version [{version}] is not supported for the scoring script. "
                               f"Supported swagger versions: [{', '.join(self.supported)}].")
        return document

