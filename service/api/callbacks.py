"""Callback URLs are checked at submit: http(s) to an allowlisted host and port, and a key to sign with
(`recursum.service.jobs.callback_targets`; addresses are checked again at each delivery)."""

from recursum.service.api.problems import ApiError
from recursum.service.jobs.callback_targets import CallbackTargets, TargetRefused


class CallbackRefused(ApiError):
    status, title = 422, "Callback URL not allowed"


def check_callback_url(url: str, targets: CallbackTargets, can_sign: bool) -> None:
    """Refuse at submit a URL the settings do not allow, or one that could only be sent unsigned."""
    try:
        targets.check_url(url)
    except TargetRefused as error:
        raise CallbackRefused(str(error)) from None
    if not can_sign:
        raise CallbackRefused("callbacks are signed with the submitting API key, and this caller has none "
                              "(dev mode); a callback is never sent unsigned")
