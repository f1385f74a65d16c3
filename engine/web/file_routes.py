"""Uploading and downloading attachments, with the permission check on every download."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from engine import files
from engine.errors import Invalid, NotFound
from engine.web.context import Ctx, handler


def upload(ctx: Ctx) -> Response:
    """Store one multipart upload (field 'file'); answers its reference for an attachment field."""
    item = ctx.form.get("file") if ctx.form is not None else None
    if not isinstance(item, UploadFile):
        raise Invalid("send the file as multipart form field 'file'", {"file": "required"})
    stored = files.store(ctx.rt, item.file, item.filename or "file", item.content_type, ctx.user.id if ctx.user else None)
    return JSONResponse({"ref": stored.ref, "name": stored.name, "size": stored.size}, status_code=201)


def download(ctx: Ctx) -> Response:
    """Send a file only to someone who may read a record holding it (otherwise 404, as if absent)."""
    ref = f"file:{ctx.request.path_params['id']}"
    stored = files.find(ctx.rt, ref)
    if not files.readable(ctx.rt, ctx.access, ref):
        raise NotFound("no such file")
    return FileResponse(files.content(ctx.rt, stored), media_type=stored.content_type, filename=stored.name,
                        content_disposition_type="attachment")


def routes() -> list[Route]:
    """Upload and download."""
    return [
        Route("/files", handler(upload), methods=["POST"], name="file_upload"),
        Route("/api/files", handler(upload), methods=["POST"], name="api_file_upload"),
        Route("/files/{id:int}", handler(download), methods=["GET"], name="file_download"),
    ]
