from django.http import HttpRequest


def csp_nonce(request: HttpRequest) -> dict[str, str]:
    """The nonce that lets a template's own <script> run under our Content-Security-Policy."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
