"""What every billing operator shares: connection, account, destination, key style, lineage."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_cfbilling import validation, windows
from airflow_provider_cfbilling.endpoints import V2_USAGE
from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.partitions import DestinationTemplate, parse_destination
from airflow_provider_cfbilling.version_compat import BaseOperator, OutletAsset, OutletAssetAlias

if TYPE_CHECKING:
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook
    from airflow_provider_cfbilling.landing import Landing
    from airflow_provider_cfbilling.sinks import OutputSpec

log = logging.getLogger(__name__)

DEFAULT_MAX_XCOM_RECORDS = 1000


class CloudflareBillingBaseOperator(BaseOperator):
    """What the billing operators share: connection, account, sink, key style and lineage.

    :param cloudflare_conn_id: the ``cloudflare`` connection (default ``cloudflare_default``).
    :param account_id: the account (32 hexadecimal characters); default the connection's
        ``extra.account_id``. Templated.
    :param destination: where the records go. Unset: the records are the XCom return value.
        Set: an object-storage URI (``file://``, ``s3://``, ``gs://``, ``abfs://`` ...) written
        atomically and idempotently; the XCom value is then a summary. Templated; after Jinja,
        ``{account_id}``, ``{period_start}`` and ``{period_end}`` (exclusive) are filled from the
        window fetched, and ``{charge_date}`` (usage operators) writes one object per UTC day.
    :param destination_conn_id: the Airflow connection of the destination's storage. Templated.
    :param file_format: ``jsonl`` (default), ``csv`` or ``parquet``; default from the suffix.
    :param key_style: ``"api"`` (the API's keys) or ``"snake"`` (the official SDK's attribute names).
    :param max_xcom_records: the most records returned through XCom when ``destination`` is unset.

    Lineage: the written object is reported as hook-level lineage and, when the OpenLineage
    provider is installed, as the output of :meth:`get_openlineage_facets_on_complete`. To
    schedule downstream DAGs on it, give ``outlets``: an ``AssetAlias`` receives an asset event for
    the exact object written (one per partition), an ``Asset`` gets the summary as its event's
    ``extra``.
    """

    template_fields: Sequence[str] = ("account_id", "destination", "destination_conn_id")
    ui_color = "#f6821f"
    source: ClassVar[str] = ""

    def __init__(
        self,
        *,
        cloudflare_conn_id: str = "cloudflare_default",
        account_id: str | None = None,
        destination: str | None = None,
        destination_conn_id: str | None = None,
        file_format: str | None = None,
        key_style: str = "api",
        max_xcom_records: int = DEFAULT_MAX_XCOM_RECORDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cloudflare_conn_id = cloudflare_conn_id
        self.account_id = account_id
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.file_format = file_format
        self.key_style = validation.key_style(key_style)
        validation.whole_number(
            max_xcom_records,
            "max_xcom_records",
            minimum=0,
            fix="Use e.g. max_xcom_records=1000, or set destination to land any number of records in storage",
        )
        self.max_xcom_records = max_xcom_records
        if file_format is not None:
            from airflow_provider_cfbilling.sinks import FORMATS

            if file_format not in FORMATS:
                raise CloudflareInputError(
                    "file_format", f"{file_format!r} is not supported", f"Use one of {', '.join(FORMATS)}"
                )
        self._written_uris: list[str] = []

    # -- hooks for subclasses --------------------------------------------------------------

    def get_hook(self) -> CloudflareHook:
        from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

        return CloudflareHook(self.cloudflare_conn_id)

    def _destination_template(self) -> DestinationTemplate | None:
        if self.destination in (None, ""):
            return None
        if not isinstance(self.destination, str):
            raise CloudflareInputError(
                "destination",
                f"expected a URI string, got {type(self.destination).__name__}",
                "Pass e.g. s3://bucket/key.jsonl",
            )
        return parse_destination(self.destination)

    def _target(
        self, owner: Mapping[str, str], window: windows.Window | None, *, allow_per_day: bool
    ) -> tuple[DestinationTemplate, OutputSpec] | None:
        """The destination, checked before any request: its placeholders and its first object."""
        template = self._destination_template()
        if template is None:
            return None
        if template.per_day and not allow_per_day:
            raise CloudflareInputError(
                "destination",
                "{charge_date} names a day, but this operator writes a snapshot that has none",
                "Use Jinja for the date of the run instead, e.g. '.../snapshot_date={{ ds }}/profile.json'",
            )
        if window is None:
            window = windows.Window(dt.date.min, dt.date.min + windows.ONE_DAY)
            if any("{" + name + "}" in template.text for name in ("period_start", "period_end")):
                raise CloudflareInputError(
                    "destination",
                    "{period_start} and {period_end} name a usage window, but a snapshot has none",
                    "Use Jinja for the date of the run instead, e.g. '.../snapshot_date={{ ds }}/profile.json'",
                )
        from airflow_provider_cfbilling.landing import output_spec

        first = template.render(owner, window, window.start)
        unfilled = template.unfilled(first)
        if unfilled:
            reads = ", ".join(f"{key} {value}" for key, value in owner.items())
            raise CloudflareInputError(
                "destination",
                f"{', '.join(unfilled)} has no value in a task that reads {reads}",
                "Use the placeholder that names what the task reads ({account_id} for an account, "
                "{organization_id} for an organization)",
            )
        return template, output_spec(first, self.file_format, self.destination_conn_id or None)

    def _landing(self, endpoint: str, owner: Mapping[str, str], source: str) -> Landing:
        from airflow_provider_cfbilling.landing import Landing

        return Landing(
            endpoint=endpoint,
            owner=owner,
            source=source,
            key_style=self.key_style,
            file_format=self.file_format,
            conn_id=self.destination_conn_id or None,
            focus_version=V2_USAGE.focus_version if source == V2_USAGE.source else None,
            complete_after_days=getattr(self, "complete_after_days", 7),
        )

    def _land(
        self,
        records: Iterable[dict[str, Any]],
        target: tuple[DestinationTemplate, OutputSpec] | None,
        landing: Landing,
        window: windows.Window | None,
        summary: dict[str, Any],
        context: Any,
    ) -> Any:
        """Send the records to XCom or to one object; the XCom return value."""
        if target is None:
            from airflow_provider_cfbilling.landing import styled

            kept: list[dict[str, Any]] = []
            for record in styled(records, self.key_style):
                if len(kept) >= self.max_xcom_records:
                    raise CloudflareInputError(
                        "max_xcom_records",
                        f"the window holds more than {self.max_xcom_records} records, too many for XCom",
                        "Set destination (e.g. 's3://bucket/cloudflare/usage.jsonl') to land them in object "
                        "storage, or raise max_xcom_records",
                    )
                kept.append(record)
            self.log.info("Returning %d records through XCom", len(kept))
            return kept
        written = {**landing.write_object(records, target[1], window), **summary}
        self._written_uris = [written["uri"]]
        self.log.info(
            "Wrote %d records (%d bytes, %s) to %s",
            written["records"],
            written["bytes"],
            written["format"],
            written["uri"],
        )
        self._report_outlets(context, [written])
        return written

    # -- lineage -----------------------------------------------------------------------------

    def _report_outlets(
        self, context: Any, objects: list[dict[str, Any]], summary: dict[str, Any] | None = None
    ) -> None:
        """Asset events for the declared outlets: one per written object for aliases (its own
        summary as extra), the whole summary as an ``Asset``'s extra."""
        outlets = list(getattr(self, "outlets", None) or [])
        if not outlets or not context or "outlet_events" not in context:
            return
        events = context["outlet_events"]
        for outlet in outlets:
            if isinstance(outlet, OutletAssetAlias):
                for written in objects:
                    events[outlet].add(OutletAsset(written["uri"]), extra=written)
            elif isinstance(outlet, OutletAsset):
                events[outlet].extra.update(summary or objects[0])

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the Cloudflare endpoint as input and the written object as output."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        outputs = [_openlineage_dataset(Dataset, uri) for uri in self._written_uris]
        return OperatorLineage(inputs=[], outputs=outputs)


def _openlineage_dataset(dataset_class: Any, uri: str) -> Any:
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme == "file":
        return dataset_class(namespace="file", name=parts.path)
    return dataset_class(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path.lstrip("/"))


__all__ = ["DEFAULT_MAX_XCOM_RECORDS", "CloudflareBillingBaseOperator"]
