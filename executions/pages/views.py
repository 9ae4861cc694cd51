"""Browser pages: the flows list, a flow (its DAG, executions, a start form) and a live
execution, plus the read-only status-history JSON the execution page fetches.

Session login only. Every object is looked up through an organization-scoped selector, so an
id of another organization answers 404 exactly like a missing one.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from executions.models import Flow, FlowExecution
from executions.pages.forms import StartExecutionForm
from executions.pages.presentation import definition_facts, graph_of, node_rows
from executions.pages.selectors import (
    definition_of_execution,
    execution_state,
    list_flows_with_counts,
    list_task_statuses,
)
from executions.selectors import get_flow, get_flow_execution, list_flow_executions
from executions.services.flow_executions import create_flow_execution
from flowplatform import tenancy
from flowplatform.authentication import principal_for_session_user
from flowplatform.exceptions import (
    BadRequest,
    NotFound,
    Unauthorized,
    ValidationFailed,
    json_error_response,
)
from flowplatform.principal import Principal

FLOWS_PER_PAGE = 50
EXECUTIONS_PER_PAGE = 25
LEGEND = ("pending", "queued", "running", "completed", "failed", "stale", "awaiting_input")

page_login_required = login_required(login_url=reverse_lazy("pages:login"))


def _principal(request: HttpRequest) -> Principal:
    principal = principal_for_session_user(request.user)
    if principal is None:
        raise PermissionDenied("Your account is not a member of any organization.")
    tenancy.set_organization(principal.organization_id)
    return principal


def _flow_or_404(principal: Principal, flow_id: Any) -> Flow:
    try:
        return get_flow(organization=principal.organization, flow_id=flow_id)
    except NotFound:
        raise Http404("Flow not found.") from None


def _execution_or_404(principal: Principal, execution_id: Any) -> FlowExecution:
    try:
        return get_flow_execution(
            organization=principal.organization, flow_execution_id=execution_id
        )
    except NotFound:
        raise Http404("Flow execution not found.") from None


@require_GET
@page_login_required
def flow_list(request: HttpRequest) -> HttpResponse:
    principal = _principal(request)
    flows = list_flows_with_counts(organization=principal.organization)
    page = Paginator(flows, FLOWS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [
        {"flow": flow, "task_count": len((flow.definition or {}).get("tasks") or [])}
        for flow in page
    ]
    context = {"page": page, "rows": rows, "organization": principal.organization}
    return render(request, "pages/flow_list.html", context)


def _render_flow(
    request: HttpRequest, principal: Principal, flow: Flow, form: StartExecutionForm, status: int
) -> HttpResponse:
    flow_definition, layout, problems = graph_of(flow.definition)
    executions = list_flow_executions(organization=principal.organization, flow_id=flow.id)
    page = Paginator(executions, EXECUTIONS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "organization": principal.organization,
        "flow": flow,
        "definition_json": json.dumps(flow.definition, indent=2),
        "layout": layout,
        "nodes": node_rows(flow_definition, layout) if flow_definition and layout else [],
        "problems": problems,
        "page": page,
        "form": form,
    }
    return render(request, "pages/flow_detail.html", context, status=status)


@require_GET
@page_login_required
def flow_detail(request: HttpRequest, flow_id: Any) -> HttpResponse:
    principal = _principal(request)
    flow = _flow_or_404(principal, flow_id)
    return _render_flow(request, principal, flow, StartExecutionForm(), 200)


@require_POST
@page_login_required
def start_execution(request: HttpRequest, flow_id: Any) -> HttpResponse:
    """Validate the input JSON, start the execution with the API's service, show it."""
    principal = _principal(request)
    flow = _flow_or_404(principal, flow_id)
    form = StartExecutionForm(request.POST)
    if form.is_valid():
        try:
            execution = create_flow_execution(
                organization=principal.organization,
                actor=principal.actor,
                flow_id=flow.id,
                input=form.cleaned_data["input"],
            )
        except (BadRequest, ValidationFailed) as exc:
            form.add_error("input", exc.message)
            for detail in exc.details:
                if isinstance(detail, dict) and detail.get("msg"):
                    form.add_error("input", _detail_text(detail))
        else:
            return redirect("pages:execution", execution_id=execution.id)
    return _render_flow(request, principal, flow, form, 422)


def _detail_text(detail: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in detail.get("loc", []) if part not in ("body",))
    return f"{loc}: {detail['msg']}" if loc else str(detail["msg"])


@require_GET
@page_login_required
def execution_detail(request: HttpRequest, execution_id: Any) -> HttpResponse:
    principal = _principal(request)
    execution = _execution_or_404(principal, execution_id)
    state = execution_state(execution=execution)
    flow_definition, layout, problems = graph_of(definition_of_execution(execution=execution))
    boot = {
        **state,
        "flow_id": str(execution.flow_id),
        "actor": principal.actor,
        **definition_facts(flow_definition),
        "urls": {
            "task_executions": reverse("task-executions"),
            "task_outputs": reverse("task-outputs"),
            "status_history": reverse("pages:status-history", args=[execution.id]),
            "websocket": f"/ws/flows/{execution.flow_id}",
        },
    }
    context = {
        "organization": principal.organization,
        "flow": execution.flow,
        "execution": execution,
        "layout": layout,
        "nodes": node_rows(flow_definition, layout, state["tasks"])
        if flow_definition and layout
        else [],
        "problems": problems,
        "boot": boot,
        "input_json": json.dumps(execution.input, indent=2),
        "legend": LEGEND,
    }
    return render(request, "pages/execution_detail.html", context)


@require_http_methods(["GET", "HEAD"])
def status_history(request: HttpRequest, execution_id: Any) -> JsonResponse:
    """``GET /pages-api/executions/<id>/status-history[?task_name=]``: the TaskStatus rows of
    one execution in arrival order, as JSON, for the logged-in user's organization."""
    if not request.user.is_authenticated:
        return json_error_response(Unauthorized("Log in to read the status history."))
    principal = principal_for_session_user(request.user)
    if principal is None:
        return json_error_response(NotFound("Flow execution not found."))
    tenancy.set_organization(principal.organization_id)
    try:
        execution = get_flow_execution(
            organization=principal.organization, flow_execution_id=execution_id
        )
    except NotFound as exc:
        return json_error_response(exc)
    task_name = request.GET.get("task_name") or None
    rows = list_task_statuses(execution=execution, task_name=task_name)
    return JsonResponse(rows, safe=False)
