"""Flows and their immutable versions: create, edit, re-version, soft delete, validate.

A flow's ``definition`` is stored in the DSL's canonical form (defaults spelled out), so two
spellings of the same flow compare equal and only a real change creates a new version. Every
version is also kept as a ``FlowVersion`` row that never changes; executions pin one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from django.db import transaction

from executions import dsl
from executions.enums import FlowStatus
from executions.models import Flow, FlowVersion
from executions.selectors import flows_of, get_flow
from flowplatform.exceptions import BadRequest, NotFound
from flowplatform.models import Organization
from flowplatform.parsers import document_problems

DefinitionSource = str | bytes | Mapping[str, Any]


class Unset:
    """Marks a keyword argument the caller did not pass (``None`` is a real value for tags)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()

# ``tasks[2].parameters.url``, ``tasks[0].parameters["a.b"]`` → path parts.
_LOC_TOKEN = re.compile(r'\[([0-9]+)\]|\[("(?:[^"\\]|\\.)*")\]|\.?([A-Za-z_][A-Za-z0-9_-]*)')
_WHOLE_DOCUMENT_TYPES = frozenset({"syntax_error", "type_error"})


def loc_parts(loc: str) -> list[str | int]:
    """Split a DSL location into path parts: ``tasks[2].parameters.url`` → tasks, 2, …."""
    parts: list[str | int] = []
    position = 0
    for match in _LOC_TOKEN.finditer(loc):
        if match.start() != position:
            return [loc]  # not a location this parser knows; keep it whole
        index, quoted, name = match.groups()
        if index is not None:
            parts.append(int(index))
        elif quoted is not None:
            parts.append(json.loads(quoted))
        else:
            parts.append(name)
        position = match.end()
    return parts if position == len(loc) else [loc]


def problem_details(problems: list[dsl.Problem]) -> list[dict[str, Any]]:
    """One ``{loc, msg, type}`` entry per DSL problem, located under ``body.definition``."""
    details = []
    for problem in problems:
        whole = problem.loc == "definition" and problem.type in _WHOLE_DOCUMENT_TYPES
        loc = [] if whole else loc_parts(problem.loc)
        details.append(
            {"loc": ["body", "definition", *loc], "msg": problem.msg, "type": problem.type}
        )
    return details


def validate_flow_definition(*, definition: DefinitionSource) -> dsl.FlowDefinition:
    """Parse and validate a definition (YAML/JSON text or a mapping) without saving anything.

    Raises ``BadRequest`` with one ``details`` entry per problem the DSL found.
    """
    try:
        flow = dsl.validate_definition(definition)
    except dsl.DefinitionError as exc:
        details = problem_details(exc.problems)
        first = exc.problems[0]
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        raise BadRequest(
            f"Invalid flow definition: {first.loc}: {first.msg}{more}", details=details
        ) from None
    # Definition text (YAML, or JSON in a string) is parsed here, not by the body parser:
    # the same bounds apply to what it holds (flowplatform.parsers).
    problems = list(document_problems(flow.to_dict(), ("body", "definition")))
    if problems:
        raise BadRequest(f"Invalid flow definition: {problems[0]['msg']}", details=problems)
    return flow


@transaction.atomic
def create_flow(
    *,
    organization: Organization,
    actor: str,
    display_name: str,
    definition: DefinitionSource,
    description: str = "",
    status: str = FlowStatus.DRAFT,
    tags: Any = None,
) -> Flow:
    """Create a flow and its version 1. ``BadRequest`` for an invalid definition."""
    canonical = validate_flow_definition(definition=definition).to_dict()
    flow = Flow.objects.create(
        organization=organization,
        display_name=display_name,
        description=description,
        status=status,
        tags=tags,
        version=1,
        definition=canonical,
        modified_by=actor,
    )
    _record_version(flow, actor=actor)
    return flow


@transaction.atomic
def update_flow(
    *,
    organization: Organization,
    flow_id: Any,
    actor: str,
    display_name: str | Unset = UNSET,
    description: str | Unset = UNSET,
    status: str | Unset = UNSET,
    tags: Any = UNSET,
    definition: DefinitionSource | Unset = UNSET,
) -> Flow:
    """Change the given fields of a live flow (others stay). A changed definition becomes
    version N+1; an unchanged one (same canonical form) creates no version.

    Holds the flow's row lock so concurrent edits cannot claim the same version number.
    Nothing is saved when the definition is invalid (``BadRequest``).
    """
    canonical = (
        None
        if isinstance(definition, Unset)
        else validate_flow_definition(definition=definition).to_dict()
    )
    flow = get_flow(organization=organization, flow_id=flow_id, for_update=True)
    changed: list[str] = []
    fields = {
        "display_name": display_name,
        "description": description,
        "status": status,
        "tags": tags,
    }
    for name, value in fields.items():
        if not isinstance(value, Unset) and not _same_json(getattr(flow, name), value):
            setattr(flow, name, value)
            changed.append(name)
    if canonical is not None and not _same_json(canonical, flow.definition):
        flow.definition = canonical
        flow.version += 1
        changed += ["definition", "version"]
        _record_version(flow, actor=actor)
    if changed:
        flow.modified_by = actor
        flow.save(update_fields=[*changed, "modified_by", "updated_at"])
    return flow


def set_flow_definition(
    *, organization: Organization, flow_id: Any, actor: str, definition: DefinitionSource
) -> Flow:
    """Replace the definition: version N+1, or nothing when it is the same flow."""
    return update_flow(
        organization=organization, flow_id=flow_id, actor=actor, definition=definition
    )


@transaction.atomic
def delete_flow(*, organization: Organization, flow_id: Any, actor: str) -> None:
    """Soft-delete a flow: hidden from lists and 404 afterwards; deleting again is a no-op.

    Its versions and executions are kept (executions stay readable for the record).
    """
    try:
        flow = (
            flows_of(organization=organization, include_deleted=True)
            .select_for_update()
            .get(id=flow_id)
        )
    except (Flow.DoesNotExist, ValueError):
        raise NotFound(f"Flow {flow_id} not found.") from None
    if flow.deleted:
        return
    flow.deleted = True
    flow.modified_by = actor
    flow.save(update_fields=["deleted", "modified_by", "updated_at"])


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON documents: ``1`` differs from ``true`` and ``1.0`` (Python says equal),
    key order does not matter (PostgreSQL's jsonb reorders keys)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _record_version(flow: Flow, *, actor: str) -> FlowVersion:
    return FlowVersion.objects.create(
        organization_id=flow.organization_id,
        flow=flow,
        version=flow.version,
        definition=flow.definition,
        created_by=actor,
    )


def validate_definition_of_flow(
    *, organization: Organization, flow_id: Any, definition: DefinitionSource | Unset = UNSET
) -> dsl.FlowDefinition:
    """Validate ``definition`` for a flow without saving, or the stored one when omitted
    (useful after the executor catalogue changed). ``NotFound`` for an unknown flow."""
    flow = get_flow(organization=organization, flow_id=flow_id)
    source = flow.definition if isinstance(definition, Unset) else definition
    return validate_flow_definition(definition=source)
