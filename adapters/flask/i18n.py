"""The web gate's messages in Spanish and English: one catalogue, one lookup.

The language is the visitor's switch (a cookie) if set, else ``web.language``
when it is not ``auto``, else the best match of ``Accept-Language``.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Request

from seatgate.gate.refusals import MESSAGES as REFUSAL_TEXT

LANGUAGES = ("es", "en")
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "seatgate_lang"

CATALOGUE: Mapping[str, Mapping[str, str]] = {
    # -- login refusals (the message keys of seatgate.gate.refusals; the
    # English text is the core's, so the CLI and the pages say the same) --
    "invalid_credentials": {
        "en": REFUSAL_TEXT["invalid_credentials"],
        "es": "Usuario desconocido o contraseña incorrecta.",
    },
    "account_disabled": {
        "en": REFUSAL_TEXT["account_disabled"],
        "es": "Esta cuenta está desactivada. Consulte a un administrador.",
    },
    "license_invalid": {
        "en": REFUSAL_TEXT["license_invalid"],
        "es": "El portal no tiene una licencia válida. Consulte a un administrador.",
    },
    "no_seat_available": {
        "en": REFUSAL_TEXT["no_seat_available"],
        "es": (
            "Las {seats} plazas de la licencia están ocupadas. Pida una plaza a un administrador."
        ),
    },
    "no_seat_reserved": {
        "en": REFUSAL_TEXT["no_seat_reserved"],
        "es": "(Reservadas para administradores: {reserved}.)",
    },
    "no_seat_assigned": {
        "en": REFUSAL_TEXT["no_seat_assigned"],
        "es": "Esta cuenta no tiene plaza asignada. Pida una a un administrador.",
    },
    "seat_request_recorded": {
        "en": REFUSAL_TEXT["seat_request_recorded"],
        "es": "Su solicitud de plaza quedó registrada para los administradores.",
    },
    "rate_limited": {
        "en": REFUSAL_TEXT["rate_limited"],
        "es": "Demasiados intentos fallidos. Espere unos minutos y vuelva a intentarlo.",
    },
    "directory_unavailable": {
        "en": REFUSAL_TEXT["directory_unavailable"],
        "es": "No se puede contactar con el directorio. Inténtelo más tarde.",
    },
    # -- request refusals --
    "unauthenticated": {
        "en": "Sign in first.",
        "es": "Inicie sesión primero.",
    },
    "session_ended": {
        "en": "Your session has ended. Sign in again.",
        "es": "Su sesión ha terminado. Vuelva a iniciar sesión.",
    },
    "forbidden": {
        "en": "Only administrators may do this.",
        "es": "Solo los administradores pueden hacer esto.",
    },
    "invalid_token": {
        "en": "The API token is not valid.",
        "es": "El token de API no es válido.",
    },
    "token_revoked": {
        "en": "The API token has been revoked.",
        "es": "El token de API ha sido revocado.",
    },
    "token_expired": {
        "en": "The API token has expired.",
        "es": "El token de API ha caducado.",
    },
    "missing_scope": {
        "en": "The API token lacks the scope {scope}.",
        "es": "Al token de API le falta el permiso {scope}.",
    },
    "done_disable": {
        "en": "{login} is disabled.",
        "es": "{login} está desactivada.",
    },
    "done_enable": {
        "en": "{login} is enabled.",
        "es": "{login} está activada.",
    },
    "csrf_failed": {
        "en": "The form has expired or did not come from this site. Reload the page and retry.",
        "es": "El formulario ha caducado o no procede de este sitio. Recargue la página.",
    },
    "unsupported_media_type": {
        "en": "Send a JSON body (Content-Type: application/json).",
        "es": "Envíe un cuerpo JSON (Content-Type: application/json).",
    },
    "bad_request": {
        "en": "The request is missing `{field}` or it is not text.",
        "es": "Falta `{field}` en la petición o no es texto.",
    },
    "request_too_large": {
        "en": "The request is too large.",
        "es": "La petición es demasiado grande.",
    },
    "sites": {"en": "Sites", "es": "Sitios"},
    "site_not_licensed": {
        "en": "This portal is not licensed for the address {host}. "
        "Use the portal's licensed address, or ask an administrator.",
        "es": "Este portal no tiene licencia para la dirección {host}. "
        "Use la dirección con licencia del portal o consulte a un administrador.",
    },
    "site_admins_only": {
        "en": "On this machine's own address ({host}) the portal serves administrators only.",
        "es": "En la dirección local de esta máquina ({host}) el portal solo atiende "
        "a administradores.",
    },
    "bad_json": {
        "en": "The body is not a JSON object this gate can read.",
        "es": "El cuerpo no es un objeto JSON que esta pasarela pueda leer.",
    },
    # -- admin actions --
    "unknown_account": {
        "en": "No account has the login `{login}`.",
        "es": "Ninguna cuenta tiene el usuario `{login}`.",
    },
    "seat_already_held": {
        "en": "`{login}` already holds a seat.",
        "es": "`{login}` ya tiene una plaza.",
    },
    "seat_not_held": {
        "en": "`{login}` holds no seat.",
        "es": "`{login}` no tiene plaza.",
    },
    "account_not_active": {
        "en": "`{login}` is not active; only active accounts can hold a seat.",
        "es": "`{login}` no está activa; solo las cuentas activas pueden tener plaza.",
    },
    "no_seat_free": {
        "en": "All {seats} seats are in use. Revoke or reassign one first.",
        "es": "Las {seats} plazas están ocupadas. Revoque o reasigne una antes.",
    },
    "token_rejected": {
        "en": "The licence token was rejected: {reason}",
        "es": "Se rechazó el token de licencia: {reason}",
    },
    "done_assign": {"en": "Seat assigned to {login}.", "es": "Plaza asignada a {login}."},
    "done_revoke": {"en": "Seat of {login} revoked.", "es": "Plaza de {login} revocada."},
    "done_reassign": {
        "en": "Seat moved from {source} to {target}.",
        "es": "Plaza trasladada de {source} a {target}.",
    },
    "no_seat_request": {
        "en": "`{login}` has no pending seat request.",
        "es": "`{login}` no tiene ninguna solicitud de plaza pendiente.",
    },
    "done_approve": {
        "en": "Seat request of {login} approved: seat assigned.",
        "es": "Solicitud de plaza de {login} aprobada: plaza asignada.",
    },
    "done_approve_replace": {
        "en": "Seat request of {login} approved: seat moved from {source}.",
        "es": "Solicitud de plaza de {login} aprobada: plaza trasladada desde {source}.",
    },
    "done_deny": {
        "en": "Seat request of {login} denied.",
        "es": "Solicitud de plaza de {login} denegada.",
    },
    "done_pin": {"en": "Seat of {login} pinned.", "es": "Plaza de {login} fijada."},
    "done_unpin": {
        "en": "Seat of {login} unpinned.",
        "es": "Plaza de {login} liberada del fijado.",
    },
    "done_license": {
        "en": "Licence token {jti} installed.",
        "es": "Token de licencia {jti} instalado.",
    },
    "released": {
        "en": "Seats released: {logins}.",
        "es": "Plazas liberadas: {logins}.",
    },
    # -- page text --
    "sign_in": {"en": "Sign in", "es": "Iniciar sesión"},
    "sign_out": {"en": "Sign out", "es": "Cerrar sesión"},
    "login": {"en": "Login", "es": "Usuario"},
    "password": {"en": "Password", "es": "Contraseña"},
    "remember_me": {"en": "Keep me signed in", "es": "Mantener la sesión iniciada"},
    "signed_out": {"en": "You have signed out.", "es": "Ha cerrado la sesión."},
    "kerberos_failed": {
        "en": "Windows sign-in did not work here. Sign in with your password.",
        "es": "El inicio de sesión de Windows no ha funcionado. Inicie sesión con su contraseña.",
    },
    "signed_in_as": {"en": "Signed in as {login}.", "es": "Sesión iniciada como {login}."},
    "administration": {"en": "Seat administration", "es": "Administración de plazas"},
    "language": {"en": "Language", "es": "Idioma"},
    "licence": {"en": "Licence", "es": "Licencia"},
    "seats_used": {"en": "Seats used", "es": "Plazas ocupadas"},
    "seats_total": {"en": "Seats in the licence", "es": "Plazas de la licencia"},
    "seats_free": {"en": "Free", "es": "Libres"},
    "seats_overage": {
        "en": "Overage (billed at true-up)",
        "es": "Exceso (se factura al regularizar)",
    },
    "overage_of": {"en": "{used} of {allowed}", "es": "{used} de {allowed}"},
    "seats_reserved": {"en": "Kept for administrators", "es": "Reservadas a administradores"},
    "unlimited": {"en": "unlimited", "es": "ilimitadas"},
    "edition": {"en": "Edition", "es": "Edición"},
    "state": {"en": "State", "es": "Estado"},
    "valid": {"en": "valid", "es": "válida"},
    "invalid": {"en": "not valid", "es": "no válida"},
    "trial_until": {"en": "trial until {date}", "es": "prueba hasta el {date}"},
    "storage_unavailable": {
        "en": "The portal cannot reach its database right now. Try again in a minute.",
        "es": "El portal no puede acceder a su base de datos ahora. Inténtelo en un minuto.",
    },
    "trial_days_left": {"en": "{days} day(s) left", "es": "quedan {days} día(s)"},
    "clock_warning": {
        "en": "The system clock is {days} day(s) behind the latest time seen; "
        "expiry dates are judged by that time.",
        "es": "El reloj del sistema va {days} día(s) por detrás de la última hora vista; "
        "los vencimientos se calculan con esa hora.",
    },
    "tokens": {"en": "Licences and add-ons", "es": "Licencias y ampliaciones"},
    "token_id": {"en": "Token", "es": "Token"},
    "kind": {"en": "Kind", "es": "Tipo"},
    "activated": {"en": "Activated", "es": "Activada"},
    "updates_until": {"en": "Updates and support until", "es": "Actualizaciones y soporte hasta"},
    "days_left": {"en": "{days} days left", "es": "quedan {days} días"},
    "ended_days_ago": {"en": "ended {days} days ago", "es": "terminó hace {days} días"},
    "renewal": {"en": "Renewal", "es": "Renovación"},
    "rate_until": {"en": "until {date}", "es": "hasta el {date}"},
    "accounts": {"en": "Accounts", "es": "Cuentas"},
    "search": {"en": "Search", "es": "Buscar"},
    "name": {"en": "Name", "es": "Nombre"},
    "status": {"en": "Status", "es": "Estado"},
    "seat": {"en": "Seat", "es": "Plaza"},
    "pinned": {"en": "pinned", "es": "fijada"},
    "last_login": {"en": "Last login", "es": "Último acceso"},
    "never": {"en": "never", "es": "nunca"},
    "yes": {"en": "yes", "es": "sí"},
    "no": {"en": "no", "es": "no"},
    "previous": {"en": "Previous", "es": "Anterior"},
    "next": {"en": "Next", "es": "Siguiente"},
    "page_of": {"en": "Page {page} of {pages}", "es": "Página {page} de {pages}"},
    "assign": {"en": "Assign a seat", "es": "Asignar plaza"},
    "revoke": {"en": "Revoke a seat", "es": "Revocar plaza"},
    "reassign": {"en": "Reassign a seat", "es": "Reasignar plaza"},
    "from": {"en": "From", "es": "De"},
    "to": {"en": "To", "es": "A"},
    "pin": {"en": "Pin or unpin a seat", "es": "Fijar o liberar plaza"},
    "pin_action": {"en": "Pin", "es": "Fijar"},
    "unpin_action": {"en": "Unpin", "es": "No fijar"},
    "install_licence": {"en": "Install a licence token", "es": "Instalar token de licencia"},
    "token_text": {"en": "Token (paste)", "es": "Token (pegar)"},
    "token_file": {"en": "or a token file", "es": "o un archivo de token"},
    "install": {"en": "Install", "es": "Instalar"},
    "audit": {"en": "Latest events", "es": "Últimos eventos"},
    "when": {"en": "When", "es": "Cuándo"},
    "actor": {"en": "Who", "es": "Quién"},
    "action": {"en": "Action", "es": "Acción"},
    "subject": {"en": "Subject", "es": "Sobre"},
    "outcome": {"en": "Outcome", "es": "Resultado"},
    "welcome": {"en": "Welcome, {name}.", "es": "Bienvenido/a, {name}."},
    "portal_placeholder": {
        "en": "You hold a seat of this portal.",
        "es": "Tiene una plaza en este portal.",
    },
}


def choose_language(request: Request, configured: str) -> str:
    """The language of this request's pages and messages."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return str(chosen)
    if configured in LANGUAGES:
        return configured
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE) or "en"


def translate(key: str, language: str, **values: object) -> str:
    """The message ``key`` in ``language`` with ``values`` filled in (unknown keys show as-is)."""
    entry = CATALOGUE.get(key)
    if entry is None:
        return key
    text = entry.get(language) or entry[DEFAULT_LANGUAGE]
    return text.format(**values) if values else text
