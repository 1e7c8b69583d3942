"""Engine controller: connects the Engines panel, the query bar, the job runner and the Document.

Results arrive as *new* layers on the document the job was started for (never overwriting a layer), class
scores go to the Results panel, and progress, Cancel and errors show in the status bar.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject

from app.jobs import JobRunner
from app.panels.engines_panel import EnginesPanel
from app.panels.job_status import JobStatus
from app.panels.query_bar import QueryBar
from app.panels.results_panel import ResultsPanel
from app.results import add_result
from engines import registry
from engines.base import Engine, StudyRun
from viewer.model.document import Document
from viewer.model.layers import ImageLayer


def card_markdown(engine: Engine) -> str:
    """The engine's model card text (or why there is none), headed by its paper."""
    from engines.weights import ModelCard

    head = f"**{engine.title}**\n\n{engine.paper}\n\n"
    try:
        text = ModelCard.load(engine.id).text()
        # headings one level smaller: the panel is narrow
        return head + "\n".join("###" + line.lstrip("#") if line.startswith("#") else line
                                 for line in text.splitlines())
    except Exception as exc:  # noqa: BLE001 - a broken card must not break the panel
        return head + f"Model card unavailable: {exc}"


@dataclass
class _Pending:
    document: Document
    engine: Engine
    query: str | None


class EngineController(QObject):
    """Owns the JobRunner and keeps the engine UI in step with the open study."""

    def __init__(self, window) -> None:  # window: MainWindow
        super().__init__(window)
        self.window = window
        self.runner = JobRunner(device=window.settings.get("device", "auto"), parent=self)
        self.engines_panel = EnginesPanel(card_markdown)
        self.results_panel = ResultsPanel()
        self.job_status = JobStatus()
        self.query_bar = QueryBar(window.settings.get("query_history", []))
        self.pending: dict[int, _Pending] = {}
        self._user_engines: dict[tuple[str, str], Engine] = {}
        self.results_panel_shown = lambda: None  # the window raises the Results tab
        self.engines_panel.run_requested.connect(lambda e: self.run(e))
        self.query_bar.query_submitted.connect(self.query)
        self.job_status.cancel_requested.connect(self.runner.cancel)
        r = self.runner
        r.started.connect(self._update_status)
        r.progress.connect(lambda job_id, *_: self._update_status(job_id))
        r.notice.connect(lambda _id, text: window.statusBar().showMessage(text, 10000))
        r.finished.connect(self._finished)
        r.failed.connect(self._failed)
        r.cancelled.connect(self._cancelled)
        self.set_document(None)

    # ---- study --------------------------------------------------------------------------------------
    def set_document(self, doc: Document | None) -> None:
        if doc is None:
            self.engines_panel.set_engines([])
            self.query_bar.set_target(None)
            return
        engines = registry.applicable(doc.base)
        kind = f"{'2D' if doc.base.is_2d else '3D'} {doc.base.modality} image"
        self.engines_panel.set_engines(engines, kind)
        query_engine = self.query_engine(doc)
        self.query_bar.set_target(query_engine.title if query_engine else None)

    @staticmethod
    def query_engine(doc: Document) -> Engine | None:
        return next((e for e in registry.applicable(doc.base) if e.takes_query), None)

    # ---- running --------------------------------------------------------------------------------------
    def engine_with_user_weights(self, engine: Engine) -> Engine:
        """``engine`` itself, or an instance of its class on the weights file chosen in Preferences."""
        path = self.window.settings.get("weights", {}).get(engine.id)
        if not path:
            return engine
        key = (engine.id, path)
        if key not in self._user_engines:
            try:
                self._user_engines[key] = type(engine)(weights=path)
            except TypeError:
                self.window.show_error(f"{engine.title} does not take a weights file; using its shipped weights.")
                return engine
        return self._user_engines[key]

    def run(self, engine: Engine, query: str | None = None) -> int | None:
        """Queue ``engine`` on the open study's base image; returns the job id."""
        doc = self.window.document
        if doc is None:
            return None
        engine = self.engine_with_user_weights(engine)
        self.runner.warm_up()
        scans = self.study_scans(doc)
        target = StudyRun(engine, scans) if engine.multi_scan and len(scans) > 1 else engine
        job_id = self.runner.submit(target, doc.base, query=query,
                                    device=self.window.settings.get("device", "auto"))
        self.pending[job_id] = _Pending(doc, engine, query)
        self._update_status(job_id)
        return job_id

    @staticmethod
    def study_scans(doc: Document) -> list:
        """The study's 3D image volumes (the opened one first, then images added to the study)."""
        return [la.volume for la in doc.layers if isinstance(la, ImageLayer) and not la.volume.is_2d]

    def query(self, text: str) -> int | None:
        """Send a typed finding to the study's query engine (heatmap layer named after it)."""
        self.window.settings.set("query_history", self.query_bar.history)
        doc = self.window.document
        engine = self.query_engine(doc) if doc is not None else None
        if engine is None:
            self.window.show_error("No engine answers text queries for this study.")
            return None
        return self.run(engine, text)

    def _update_status(self, job_id: int) -> None:
        job = self.runner.job(job_id)
        waiting = max(0, len(self.runner.active_jobs()) - 1)
        self.job_status.running(job_id, job.title, job.fraction, job.message or "queued", job.elapsed_s, waiting)

    def _next_or_idle(self) -> None:
        active = self.runner.active_jobs()
        if active:
            self._update_status(active[0].id)
        else:
            self.job_status.idle()

    def _finished(self, job_id: int, result) -> None:
        p = self.pending.pop(job_id, None)
        if p is None:
            return
        layers = add_result(p.document, p.engine, result, p.query)  # a query updates its query layer
        if result.scores:
            title = f"{p.engine.title}" + (f" — “{p.query}”" if p.query else "")
            self.results_panel.show_scores(title, result.scores, list(result.notes), p.engine.validation())
            self.results_panel_shown()
        self.window.statusBar().showMessage(
            f"{p.engine.title}: {len(layers)} layer(s) in {self.runner.job(job_id).elapsed_s:.1f} s", 8000)
        self._next_or_idle()

    def _failed(self, job_id: int, message: str, details: str) -> None:
        self.pending.pop(job_id, None)
        self._next_or_idle()
        self.job_status.failed(message, details)

    def _cancelled(self, job_id: int) -> None:
        self.pending.pop(job_id, None)
        self._next_or_idle()
        self.window.statusBar().showMessage("Job cancelled; nothing was added.", 5000)
