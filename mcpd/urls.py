from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from audit.dashboard_page import usage_dashboard
from audit.views import Usage
from llms.playground import playground
from mcpd import views
from mcpd.login import ThrottledAdminLoginForm
from mcpd.metrics import metrics_view

admin.site.site_header = "mcpd administration"
admin.site.site_title = "mcpd"
admin.site.index_title = "LLM gateway"
admin.site.login_form = ThrottledAdminLoginForm

urlpatterns = [
    path("", views.root, name="root"),
    path("api/hello", views.Hello.as_view(), name="hello"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    # Inside the admin (its login, staff only, its look); linked from the admin index.
    path("admin/usage/", admin.site.admin_view(usage_dashboard), name="usage-dashboard"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its init script as a file (/api/docs/?script): no inline script to allow.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/usage/", Usage.as_view(), name="usage"),
    path("playground/", playground, name="playground"),
    path("", include("llms.urls")),
]

handler404 = "mcpd.views.not_found"
handler500 = "mcpd.views.server_error"
