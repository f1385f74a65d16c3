"""Spreadsheet screens and API: export a list view, the import template, upload → map → preview → apply → undo.

The API exports with `GET /api/<module>/export/xlsx|csv?<list parameters>` and imports with `POST /api/<module>/import`
(multipart `file`, optional mode, key, on_error, dry_run, mapping as JSON); `GET /api/<module>/import/<id>` is an import's
status, `POST …/<id>/undo` undoes it.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message

from engine.errors import Invalid
from engine.io import export as exports
from engine.io import jobs, log
from engine.io.limits import DEFAULT_LIMITS, TooLarge
from engine.io.plan import Options
from engine.io.readers import file_kind
from engine.io.run import prepare
from engine.records import module_of, require
from engine.web.context import Ctx, handler
from engine.web.render import render as render_page


def render(ctx: Ctx, template_name: str, values: dict[str, Any], block: str | None = None) -> Response:
    """Render one of the io/ screens with the import words at hand."""
    from engine.io.words import word

    return render_page(ctx, template_name, {"w": lambda key: word(key, ctx.locale), **values}, block=block)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WAIT_SECONDS = 3.0


def _module(ctx: Ctx) -> str:
    return module_of(ctx.rt, ctx.request.path_params["module"]).name


def export_list(ctx: Ctx) -> Response:
    """The list view (same filters, sort and columns as the list) as .xlsx or .csv."""
    name = _module(ctx)
    params = [(k, v) for k, v in ctx.request.query_params.multi_items() if k != "format"]
    fmt = ctx.request.path_params.get("format") or ctx.request.query_params.get("format", "xlsx")
    if fmt not in exports.FORMATS:
        raise Invalid("unknown export format", {"format": "use xlsx or csv"})
    module, query, cols = exports.plan(ctx.rt, ctx.access, name, params)
    filename = f"{module.name}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
    values = exports.rows(ctx.rt, ctx.access, module, query, cols, floats=fmt == "xlsx")
    if fmt == "csv":
        chunks = (chunk for _, chunk in exports.csv_chunks(cols, values, ctx.locale))
        return StreamingResponse(chunks, media_type="text/csv; charset=utf-8", headers=headers)
    fd, path = tempfile.mkstemp(suffix=".xlsx", prefix="loom-export-")
    os.close(fd)
    exports.write_xlsx(path, cols, values, module.plural(ctx.locale))
    return FileResponse(path, media_type=XLSX, headers=headers, background=BackgroundTask(os.unlink, path))


def download_template(ctx: Ctx) -> Response:
    """The module's import template for this user."""
    from engine.io.template import template  # openpyxl is imported on first use, not at start

    name = _module(ctx)
    return Response(template(ctx.rt, ctx.access, name), media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}-template.xlsx"', "Cache-Control": "no-store"})


def import_page(ctx: Ctx) -> Response:
    """Upload form and this user's recent imports into the module."""
    name = _module(ctx)
    module = ctx.rt.spec.module(name)
    require(ctx.access, module, "import")
    entries = log.recent(ctx.rt, name, ctx.user.id if ctx.user else None)
    return render(ctx, "io/import.html", {"module": module, "entries": entries, "key_fields": _key_fields(module)})


def _key_fields(module: Any) -> list[Any]:
    return [f for f in module.fields if f.unique or f.name in ("id", module.title_field)]


def _upload_dir(ctx: Ctx) -> Path:
    folder = Path(ctx.rt.settings.files) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _options(values: dict[str, str], mapping: tuple[str | None, ...] | None = None) -> Options:
    dry = values.get("dry_run", "").lower() in ("1", "true", "yes", "on")
    return Options(values.get("mode") or "insert", values.get("key") or None,
                   "skip" if values.get("on_error") == "skip" else "rollback", dry, mapping=mapping).checked()


def _form_values(ctx: Ctx) -> dict[str, str]:
    return {k: v for k, v in (ctx.form.multi_items() if ctx.form else []) if isinstance(v, str)}


def _store(ctx: Ctx) -> tuple[str, str, str]:
    """Save the uploaded file (already size-capped while received); returns (path, name, kind)."""
    item = ctx.form.get("file") if ctx.form is not None else None
    if not isinstance(item, UploadFile) or not item.filename:
        raise Invalid("choose a file to import", {"file": "required"})
    path = str(_upload_dir(ctx) / f"{uuid.uuid4().hex}.upload")
    with open(path, "wb") as out:
        while chunk := item.file.read(1 << 20):
            out.write(chunk)
    try:
        return path, item.filename, file_kind(path, item.filename)
    except Exception:
        os.unlink(path)
        raise


def _proposal(ctx: Ctx, name: str, path: str, kind: str, options: Options) -> dict[str, Any]:
    sheet, mapping, key = prepare(ctx.rt, ctx.access, name, path, kind, options)
    sheet.close()
    return {"proposal": {"headers": sheet.headers, "mapping": mapping, "key": key, "header_row": sheet.header_row,
                         "rows": sheet.total}}


def upload(ctx: Ctx) -> Response:
    """Receive a file, check it, propose the column mapping; then the mapping page."""
    name = _module(ctx)
    options = _options(_form_values(ctx))
    path, filename, kind = _store(ctx)
    try:
        proposal = _proposal(ctx, name, path, kind, options)
    except Exception:
        os.unlink(path)
        raise
    import_id = log.start(ctx.rt, name, ctx.user.id if ctx.user else None, filename, kind, path, options)
    log.mark(ctx.rt, import_id, summary=json.dumps(proposal, ensure_ascii=False, default=str), total=proposal["proposal"]["rows"])
    return RedirectResponse(f"/m/{name}/import/{import_id}", status_code=303)


def _entry(ctx: Ctx) -> log.Entry:
    module = _module(ctx) if "module" in ctx.request.path_params else None
    return log.load(ctx.rt, int(ctx.request.path_params["id"]), ctx.user.id if ctx.user else None, module)


def job_page(ctx: Ctx) -> Response:
    """Where an import stands: mapping, progress, preview, result."""
    entry = _entry(ctx)
    module = ctx.rt.spec.module(entry.module)
    values = {"module": module, "entry": entry, "board": _board(ctx).get(entry.id), "fields": _choices(ctx, module)}
    if ctx.is_htmx and ctx.request.url.path.endswith("/progress"):
        if not entry.running:
            return Response(status_code=204, headers={"HX-Refresh": "true"})
        return render(ctx, "io/job.html", values, block="progress")
    return render(ctx, "io/job.html", values)


def _choices(ctx: Ctx, module: Any) -> list[tuple[str, str]]:
    from engine.io.columns import targets

    return [(name, t.label(ctx.locale)) for name, t in targets(ctx.rt.spec, module).items()]


def _board(ctx: Ctx) -> dict[int, tuple[int, int]]:
    state = ctx.request.app.state
    if not hasattr(state, "import_board"):
        state.import_board = {}
    board: dict[int, tuple[int, int]] = state.import_board
    return board


def confirm_mapping(ctx: Ctx) -> Response:
    """Store the confirmed mapping and options, then start the dry run."""
    entry = _entry(ctx)
    values = _form_values(ctx)
    count = len(entry.summary.get("proposal", {}).get("headers", []))
    mapping = tuple(values.get(f"col{i}") or None for i in range(count))
    options = _options(values, mapping)
    log.set_options(ctx.rt, entry.id, options)
    return _start(ctx, log.load(ctx.rt, entry.id), "preview")


def _start(ctx: Ctx, entry: log.Entry, action: str) -> Response:
    if entry.running:
        raise Invalid("this import is already running")
    thread = jobs.start(ctx.rt, ctx.access, entry, action, _board(ctx))
    thread.join(float(getattr(ctx.request.app.state, "import_wait", WAIT_SECONDS)))
    return RedirectResponse(f"/m/{entry.module}/import/{entry.id}", status_code=303)


def apply(ctx: Ctx) -> Response:
    """Run the previewed import for real."""
    entry = _entry(ctx)
    if entry.status not in ("previewed", "failed"):
        raise Invalid("preview the import before applying it")
    return _start(ctx, entry, "apply")


def undo(ctx: Ctx) -> Response:
    """Undo an applied import."""
    entry = _entry(ctx)
    require(ctx.access, ctx.rt.spec.module(entry.module), "import")  # here too, not only in the job: a 403 at once
    return _start(ctx, entry, "undo")


def errors_file(ctx: Ctx) -> Response:
    """The error report of an import's last run."""
    from engine.io.report import error_report  # openpyxl on first use

    entry = _entry(ctx)
    header_row = int(entry.summary.get("header_row") or entry.summary.get("proposal", {}).get("header_row") or 1)
    data = error_report(entry.stored, entry.file_kind, header_row, entry.errors, ctx.locale)
    return Response(data, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{entry.module}-errors.xlsx"'})


def api_import(ctx: Ctx) -> Response:
    """Import in one call: dry run or apply, answered with the counts, the samples and every problem."""
    name = _module(ctx)
    values = _form_values(ctx)
    mapping = _api_mapping(values.get("mapping"))
    options = _options(values)
    path, filename, kind = _store(ctx)
    import_id = log.start(ctx.rt, name, ctx.user.id if ctx.user else None, filename, kind, path, options)
    try:
        status, result = jobs.logged(ctx.rt, ctx.access, import_id, name, path, kind, _with_mapping(ctx, name, path, kind, options, mapping))
    except Exception as exc:
        log.mark(ctx.rt, import_id, status="failed", message=str(getattr(exc, "message", "failed")))
        os.unlink(path)
        raise
    body = {"import_id": import_id, "status": status, **result.summary(), "problems": [p.as_dict() for p in result.problems]}
    if status == "failed":
        body["error"] = {"code": "import_failed", "message": f"{len(result.problems)} problems: nothing was written", "fields": {}}
    return JSONResponse(body, status_code=422 if status == "failed" else 200)


def _api_mapping(raw: str | None) -> dict[str, str | None] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise Invalid("mapping must be JSON", {"mapping": 'e.g. {"Company": "name", "Notes": null}'}) from None
    if not isinstance(value, dict):
        raise Invalid("mapping must be a JSON object", {"mapping": "column header → field name (or null)"})
    return {str(k): (str(v) if v else None) for k, v in value.items()}


def _with_mapping(ctx: Ctx, name: str, path: str, kind: str, options: Options, by_header: dict[str, str | None] | None) -> Options:
    if by_header is None:
        return options
    sheet, proposed, _ = prepare(ctx.rt, ctx.access, name, path, kind, options)
    sheet.close()
    mapping = tuple(by_header.get(h, p) for h, p in zip(sheet.headers, proposed, strict=True))
    return Options(options.mode, options.key, options.on_error, options.dry_run, mapping=mapping)


def api_status(ctx: Ctx) -> Response:
    """An import's status, progress, counts and problems."""
    entry = _entry(ctx)
    done, total = _board(ctx).get(entry.id, (entry.done, entry.total))
    return JSONResponse({"import_id": entry.id, "module": entry.module, "status": entry.status, "phase": entry.phase, "done": done,
                         "total": total, "message": entry.message, **entry.summary, "problems": entry.errors})


def api_undo(ctx: Ctx) -> Response:
    """Undo an applied import now."""
    from engine.io.undo import undo as run_undo

    entry = _entry(ctx)
    counts = run_undo(ctx.rt, ctx.access, entry)
    return JSONResponse({"import_id": entry.id, "status": "undone", **counts})


def capped(fn: Any) -> Any:
    """Like `handler`, but the body is counted while it arrives and refused past the upload limit
    (`app.state.import_max_bytes`, default 50 MB) before anything is parsed."""
    inner = handler(fn)

    async def endpoint(request: Request) -> Response:
        limit = int(getattr(request.app.state, "import_max_bytes", DEFAULT_LIMITS.max_bytes)) + 100_000
        if int(request.headers.get("content-length") or 0) > limit:
            raise TooLarge(f"the file is larger than {limit // 1_000_000} MB")
        received = 0
        receive = request.receive

        async def counting() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise TooLarge(f"the file is larger than {limit // 1_000_000} MB")
            return message

        return await inner(Request(request.scope, counting))

    endpoint.__name__ = fn.__name__
    return endpoint


def routes() -> list[Route]:
    """Export, template and import routes for every module."""
    return [
        Route("/m/{module}/export", handler(export_list), methods=["GET"], name="io_export"),
        Route("/api/{module}/export/{format}", handler(export_list), methods=["GET"], name="api_io_export_as"),
        Route("/m/{module}/import/template.xlsx", handler(download_template), methods=["GET"], name="io_template"),
        Route("/api/{module}/import/template.xlsx", handler(download_template), methods=["GET"], name="api_io_template"),
        Route("/m/{module}/import", handler(import_page), methods=["GET"], name="io_import"),
        Route("/m/{module}/import", capped(upload), methods=["POST"], name="io_upload"),
        Route("/m/{module}/import/{id:int}", handler(job_page), methods=["GET"], name="io_job"),
        Route("/m/{module}/import/{id:int}/progress", handler(job_page), methods=["GET"], name="io_progress"),
        Route("/m/{module}/import/{id:int}/mapping", handler(confirm_mapping), methods=["POST"], name="io_mapping"),
        Route("/m/{module}/import/{id:int}/apply", handler(apply), methods=["POST"], name="io_apply"),
        Route("/m/{module}/import/{id:int}/undo", handler(undo), methods=["POST"], name="io_undo"),
        Route("/m/{module}/import/{id:int}/errors.xlsx", handler(errors_file), methods=["GET"], name="io_errors"),
        Route("/api/{module}/import", capped(api_import), methods=["POST"], name="api_io_import"),
        Route("/api/{module}/import/{id:int}", handler(api_status), methods=["GET"], name="api_io_status"),
        Route("/api/{module}/import/{id:int}/undo", handler(api_undo), methods=["POST"], name="api_io_undo"),
        Route("/api/{module}/import/{id:int}/errors.xlsx", handler(errors_file), methods=["GET"], name="api_io_errors"),
    ]

