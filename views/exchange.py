"""系统管理 → 跨省交换: the provinces this installation exchanges 跨省转学 packages with (superadmin only).

The screen and the REST API (/api/v1/exchangepeer/) only collect input and show results; every rule and message
is app.exchange's (add_peer, revoke_peer, list_peers), which the CLI (`xueji exchange-peer`) calls too."""
from flask import flash, g, redirect, request, url_for
from flask_appbuilder import BaseView
from flask_appbuilder.api import BaseApi, expose as api_expose, protect
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose

from app import exchange
from app.errors import json_error
from app.extensions import db
from app.i18n import _l
from views.base import refused, rest_safe

PERMISSIONS = {"list": "read", "add": "write", "revoke": "delete"}


def peer_json(peer) -> dict:
    return {"id": peer.id, "province_code": peer.province_code, "name": peer.name, "public_key": peer.public_key,
            "fingerprint": peer.fingerprint, "added_by": peer.added_by,
            "added_at": peer.added_at.isoformat(timespec="seconds") if peer.added_at else None,
            "revoked": peer.revoked_at is not None, "revoked_by": peer.revoked_by,
            "revoked_at": peer.revoked_at.isoformat(timespec="seconds") if peer.revoked_at else None}


class ExchangePeerView(BaseView):
    """跨省交换: list the peers, register one (province code + pasted key), revoke one."""
    route_base = "/exchangepeer"
    class_permission_name = "ExchangePeer"
    method_permission_name = PERMISSIONS
    default_view = "list"

    def _page(self, form=None):
        return self.render_template("xueji/exchange_peers.html", title=_l("跨省交换"),
                                    peers=exchange.list_peers(db.session, g.user), form=form or {},
                                    public_key=exchange.public_key_text(), my_fingerprint=exchange.my_fingerprint())

    @expose("/")
    @has_access
    def list(self):
        return self._page()

    @expose("/add", methods=["POST"])
    @has_access
    def add(self):
        with refused():
            peer = exchange.add_peer(db.session, g.user, request.form.get("province_code"),
                                     request.form.get("public_key"), request.form.get("name"))
            flash(f"已登记{peer.name}（{peer.province_code}）的公钥，指纹 {peer.fingerprint}", "success")
            return redirect(url_for("ExchangePeerView.list"))
        return self._page(request.form)

    @expose("/revoke/<int:pk>", methods=["POST"])
    @has_access
    def revoke(self, pk):
        with refused():
            peer = exchange.revoke_peer(db.session, g.user, pk)
            flash(f"已撤销{peer.name}（{peer.province_code}）的公钥，其数据包不再被接受", "success")
        return redirect(url_for("ExchangePeerView.list"))


class ExchangePeerApi(BaseApi):
    """/api/v1/exchangepeer/: GET lists, POST registers {"province_code", "public_key"}, DELETE /<id> revokes."""
    resource_name = "exchangepeer"
    class_permission_name = "ExchangePeer"
    method_permission_name = {"get_list": "read", "get": "read", "post": "write", "delete": "delete"}
    openapi_spec_tag = "ExchangePeer"

    @api_expose("/", methods=["GET"])
    @protect()
    @rest_safe
    def get_list(self):
        """The provinces this installation exchanges with, live keys first.
        ---
        get:
          summary: 跨省交换：已登记的省份公钥（含已撤销的）
          responses:
            200:
              description: '{"result": [{"id", "province_code", "name", "public_key", "fingerprint", "added_by",
                "added_at", "revoked", "revoked_by", "revoked_at"}], "count"}'
        """
        peers = exchange.list_peers(db.session, g.user)
        return self.response(200, result=[peer_json(p) for p in peers], count=len(peers))

    @api_expose("/<int:pk>", methods=["GET"])
    @protect()
    @rest_safe
    def get(self, pk):
        """One peer.
        ---
        get:
          summary: 跨省交换：一个省份的公钥
          parameters:
          - in: path
            name: pk
            required: true
            schema:
              type: integer
          responses:
            200:
              description: '{"result": {…}}'
            404:
              $ref: '#/components/responses/404'
        """
        peer = next((p for p in exchange.list_peers(db.session, g.user) if p.id == pk), None)
        if peer is None:
            return json_error(404, "not_found", "该省份公钥不存在")
        return self.response(200, result=peer_json(peer))

    @api_expose("/", methods=["POST"])
    @protect()
    @rest_safe
    def post(self):
        """Register the other province's public key, as its exchange page shows it.
        ---
        post:
          summary: 跨省交换：登记对方省份的公钥（每省一把有效公钥）
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    province_code:
                      type: string
                      description: 6位省级行政区划代码，如420000
                    public_key:
                      type: string
                      description: 对方系统“跨省转学数据包”页面显示的公钥
                    name:
                      type: string
                      description: 省份名称（仅当代码不在行政区划表中时使用）
                  required: [province_code, public_key]
          responses:
            201:
              description: '{"result": {…the peer…}}'
            409:
              description: the province already has a live key
            422:
              description: '{"code", "message"}'
        """
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            body = {}
        peer = exchange.add_peer(db.session, g.user, body.get("province_code"), body.get("public_key"),
                                 body.get("name") if isinstance(body.get("name"), str) else None)
        return self.response(201, result=peer_json(peer))

    @api_expose("/<int:pk>", methods=["DELETE"])
    @protect()
    @rest_safe
    def delete(self, pk):
        """Revoke a peer's key: the row stays (revoked_at, revoked_by); its packages are refused from now on.
        ---
        delete:
          summary: 跨省交换：撤销一个省份的公钥（保留记录）
          parameters:
          - in: path
            name: pk
            required: true
            schema:
              type: integer
          responses:
            200:
              description: '{"result": {…the peer, revoked…}}'
            404:
              $ref: '#/components/responses/404'
            409:
              description: already revoked
        """
        peer = exchange.revoke_peer(db.session, g.user, pk)
        return self.response(200, result=peer_json(peer))
