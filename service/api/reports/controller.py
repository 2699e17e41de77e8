"""Routes of /v1/summaries/{job_id}/nodes/{node_id}/reports: thin handlers over `ReportService`.

POST answers 201 with a report built at once (evidence, compare), 202 with a pending one the model worker
will generate (critique, qa; poll its URL), and 200 with the stored report when the same one was asked
for before. Creating needs the `evaluate` scope; reading needs `evaluate` or `summarize`.
"""

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter

from recursum.schemas.reports import ReportCreate, ReportKind, ReportRead
from recursum.service.api.reports.service import ReportService

Reports = NamedDependency[ReportService]
PathId = FromPath[str]
READERS = ("evaluate", "summarize")
KIND_FILTER = Parameter(default=None, description="only reports of this kind")


class ReportController(Controller):
    path = "/v1/summaries/{job_id:str}/nodes/{node_id:str}/reports"
    tags = ["reports"]

    @post("/", opt={"scope": "evaluate"}, sync_to_thread=True, status_code=201)
    def create(self, request: Request, job_id: PathId, node_id: PathId, data: JSONBody[ReportCreate],
               reports: Reports) -> Response[ReportRead]:
        """Ask for a report about the node (same request, same report): 201 built, 202 pending, 200 stored."""
        report, status = reports.create(job_id, node_id, data, request.state.principal,
                                        request.app.state.worker.engine)
        if report.status == "pending":
            request.app.state.worker.notify()
        return Response(report, status_code=status, headers={"Location": f"{request.url.path.rstrip('/')}/"
                                                                          f"{report.id}"})

    @get("/", opt={"scope": READERS}, sync_to_thread=True)
    def index(self, request: Request, job_id: PathId, node_id: PathId, reports: Reports,
              kind: ReportKind | None = KIND_FILTER) -> list[ReportRead]:
        """The node's reports, oldest first."""
        return reports.of_node(job_id, node_id, request.state.principal, kind)

    @get("/{report_id:str}", opt={"scope": READERS}, sync_to_thread=True)
    def read(self, request: Request, job_id: PathId, node_id: PathId, report_id: PathId,
             reports: Reports) -> ReportRead:
        """One report; `status` is pending until the model worker has generated it."""
        return reports.read(job_id, node_id, report_id, request.state.principal)
