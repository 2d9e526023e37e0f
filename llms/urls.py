from django.urls import path

from llms import views

urlpatterns = [
    path("api/v1/llms/", views.LlmList.as_view(), name="llm-list"),
    path("api/v1/llms/<str:name>/", views.LlmDetail.as_view(), name="llm-detail"),
]
