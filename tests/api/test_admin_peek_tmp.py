import pytest
pytestmark = pytest.mark.django_db
def test_peek(client, admin_user, secret, llm):
    client.force_login(admin_user)
    r = client.post(f"/admin/secrets_app/secret/{secret.pk}/delete/", {"post": "yes"})
    import re
    html = r.content.decode()
    i = html.find('id="content"')
    print(re.sub(r"\s+", " ", re.sub("<[^>]+>", " ", html[i:i+3000])))
