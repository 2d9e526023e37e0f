from django.urls import path

from llms import inference_views, messages_views, model_views, responses_views, views

urlpatterns = [
    path("api/v1/llms/", views.LlmList.as_view(), name="llm-list"),
    path("api/v1/llms/<str:name>/", views.LlmDetail.as_view(), name="llm-detail"),
    path("api/v1/llms/<str:name>/infer", inference_views.Infer.as_view(), name="llm-infer"),
    path("v1/chat/completions", inference_views.ChatCompletions.as_view(), name="chat-completions"),
    path("v1/messages", messages_views.Messages.as_view(), name="messages"),
    path("v1/messages/count_tokens", messages_views.CountTokens.as_view(), name="count-tokens"),
    path("v1/responses", responses_views.Responses.as_view(), name="responses"),
    path("v1/responses/<path:rest>", responses_views.StoredResponse.as_view(), name="stored-response"),
    path("v1/models", model_views.Models.as_view(), name="models"),
    path("v1/models/<str:name>", model_views.ModelDetail.as_view(), name="model-detail"),
]
