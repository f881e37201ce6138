"""The text of each notification, in English and Spanish (``notify.language``).

A template is a subject and a body with ``{name}`` fields filled from the
event's data (and ``installation``). Every kind of event has both languages;
the tests check it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Template = tuple[str, str]

TEMPLATES: dict[str, dict[str, Template]] = {
    "seats.threshold": {
        "en": (
            "[seatgate] {threshold}% of seats in use on {installation}",
            "{used} of {total} licensed seats are in use ({threshold}% reached).\n"
            "When every seat is held, new users are refused until a seat is freed "
            "or more seats are licensed.",
        ),
        "es": (
            "[seatgate] {threshold}% de los puestos en uso en {installation}",
            "Hay {used} de {total} puestos licenciados en uso (se ha alcanzado el "
            "{threshold}%).\nCuando todos los puestos estén ocupados, los usuarios nuevos "
            "serán rechazados hasta que se libere un puesto o se licencien más.",
        ),
    },
    "seats.overage": {
        "en": (
            "[seatgate] Seat overage in use on {installation}",
            "{used} seats are held for {seats} licensed: {over} beyond the licence, "
            "within the allowance of {allowed}. The overage is billed at true-up.",
        ),
        "es": (
            "[seatgate] Exceso de puestos en uso en {installation}",
            "Hay {used} puestos ocupados para {seats} licenciados: {over} por encima de "
            "la licencia, dentro del margen de {allowed}. El exceso se factura en la "
            "regularización.",
        ),
    },
    "seats.request": {
        "en": (
            "[seatgate] {login} asks for a seat on {installation}",
            "{login} was refused for want of a free seat and asked for one.\n"
            "Review it with `seatgate seats requests`.",
        ),
        "es": (
            "[seatgate] {login} solicita un puesto en {installation}",
            "{login} fue rechazado por no haber puestos libres y ha solicitado uno.\n"
            "Revíselo con `seatgate seats requests`.",
        ),
    },
    "updates.ending": {
        "en": (
            "[seatgate] Updates period of {jti} ends in {days} days",
            "The updates and support period of licence {jti} ends on {until}.\n"
            "Renewing now costs {rate}% of its price. Use is never blocked by it.",
        ),
        "es": (
            "[seatgate] El periodo de actualizaciones de {jti} termina en {days} días",
            "El periodo de actualizaciones y soporte de la licencia {jti} termina el "
            "{until}.\nRenovar ahora cuesta el {rate}% de su precio. El uso nunca se "
            "bloquea por ello.",
        ),
    },
    "updates.ended": {
        "en": (
            "[seatgate] Updates period of {jti} has ended",
            "The updates and support period of licence {jti} ended on {until}.\n"
            "Renewal costs {rate}% of its price until 30 days after that date, 60% later.",
        ),
        "es": (
            "[seatgate] El periodo de actualizaciones de {jti} ha terminado",
            "El periodo de actualizaciones y soporte de la licencia {jti} terminó el "
            "{until}.\nRenovar cuesta el {rate}% de su precio hasta 30 días después de esa "
            "fecha, y el 60% más tarde.",
        ),
    },
    "renewal.rate_rising": {
        "en": (
            "[seatgate] Renewal of {jti} rises to 60% on {changes_at}",
            "Renewing licence {jti} costs 22% of its price until {changes_at}, and 60% after that.",
        ),
        "es": (
            "[seatgate] La renovación de {jti} sube al 60% el {changes_at}",
            "Renovar la licencia {jti} cuesta el 22% de su precio hasta el {changes_at}, "
            "y el 60% después.",
        ),
    },
    "trial.ending": {
        "en": (
            "[seatgate] Trial ends in {days} day(s) on {installation}",
            "The trial licence {jti} ends on {until}. After that nobody can log in "
            "until a licence is installed.",
        ),
        "es": (
            "[seatgate] La prueba termina en {days} día(s) en {installation}",
            "La licencia de prueba {jti} termina el {until}. Después nadie podrá "
            "iniciar sesión hasta que se instale una licencia.",
        ),
    },
    "trial.ended": {
        "en": (
            "[seatgate] Trial has ended on {installation}",
            "The trial licence {jti} ended on {until}. Logins are refused until a "
            "licence is installed (`seatgate license install`).",
        ),
        "es": (
            "[seatgate] La prueba ha terminado en {installation}",
            "La licencia de prueba {jti} terminó el {until}. Los inicios de sesión se "
            "rechazan hasta que se instale una licencia (`seatgate license install`).",
        ),
    },
    "directory.sync_stopped": {
        "en": (
            "[seatgate] Directory sync stopped by its safety limit on {installation}",
            "A sync from {server} would have disabled or deleted {count} of {total} "
            "directory accounts and was stopped; nothing was changed.\n{reason}",
        ),
        "es": (
            "[seatgate] Sincronización del directorio detenida por su límite en {installation}",
            "Una sincronización desde {server} habría desactivado o borrado {count} de "
            "{total} cuentas del directorio y se detuvo; no se cambió nada.\n{reason}",
        ),
    },
    "audit.broken": {
        "en": (
            "[seatgate] Audit log NOT intact on {installation}",
            "`seatgate audit verify` found a break in the audit hash chain: {problem}\n"
            "An audit event was edited, inserted or deleted.",
        ),
        "es": (
            "[seatgate] El registro de auditoría NO está íntegro en {installation}",
            "`seatgate audit verify` encontró una rotura en la cadena de hashes de "
            "auditoría: {problem}\nSe editó, insertó o borró un evento de auditoría.",
        ),
    },
    "notify.test": {
        "en": (
            "[seatgate] Test notification from {installation}",
            "This is a test of the {channel} channel. Notifications will arrive like this one.",
        ),
        "es": (
            "[seatgate] Notificación de prueba de {installation}",
            "Esto es una prueba del canal {channel}. Las notificaciones llegarán como esta.",
        ),
    },
}


class _Fields(dict[str, Any]):
    """Leaves a field the data lacks visible instead of failing the delivery."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(kind: str, data: Mapping[str, Any], language: str) -> tuple[str, str]:
    """The subject and body of an event of ``kind`` in ``language`` (``en`` or ``es``).

    An unknown kind (an event written by a newer version) gets a plain
    subject and its data, so it is still delivered.
    """
    fields = _Fields(data)
    template = TEMPLATES.get(kind, {}).get(language) or TEMPLATES.get(kind, {}).get("en")
    if template is None:
        details = "\n".join(f"{key}: {value}" for key, value in sorted(data.items()))
        return f"[seatgate] {kind}", details
    subject, body = template
    return subject.format_map(fields), body.format_map(fields)
