"""moto's server with IAM authorization on, for the e2e control plane.

moto does not check who calls it unless told to, and even then it leaves three gaps
that Paved's tenancy tests rely on. This launcher closes them before it serves:

1. Authorization on from the first request (INITIAL_NO_AUTH_ACTION_COUNT=0). Every
   signed request must come from a known access key, and that key's policies must
   allow the action. The plane's own callers (the operator, seed.py, query.py) use
   the key of the IAM user `paved-e2e-admin`, which is made here before serving and
   allowed everything. The control plane exports that key as AWS_ACCESS_KEY_ID and
   AWS_SECRET_ACCESS_KEY.
2. Secrets Manager resources. moto authorizes every Secrets Manager call against
   Resource "*", so a policy naming secret ARNs allows or refuses nothing. Here the
   resource of a call that names a secret (`SecretId`) is that secret's ARN, as in
   AWS. A role allowed `arn:…:secret:team-a/svc/*` is then refused
   `team-b/other/api` by moto's own policy evaluation.
3. Web identity trust. AssumeRoleWithWebIdentity is unsigned (the token is the
   credential), which moto's authorizer cannot handle, and moto does not evaluate the
   role's trust policy for it. Here the role's trust policy is evaluated against the
   token's claims: a statement must allow sts:AssumeRoleWithWebIdentity for the
   federated principal `oidc-provider/<iss without https://>`, and every StringEquals
   and StringLike condition on `<issuer>:sub` and `<issuer>:aud` must hold (a statement
   with any other condition operator allows nothing). A signed call is held to the
   same trust check. The token's signature is
   not verified: the tests take their tokens from the real API server's TokenRequest.

And one fix: moto recomputes a request's signature from the form parameters it parsed
when the raw body is gone (werkzeug consumes a form body), re-encoding them as botocore
would. SDKs that encode differently (the Rust SDK leaves `:` and `/` as they are) then
never match. The raw body is kept aside here and the signature computed over it; a
REST call with no body (EKS's GETs) is checked over the empty payload it was signed
with, not over its parsed query parameters.

And one more: moto gives every RDS instance the same DbiResourceId, the ID IAM database
authentication names (`rds-db:connect` on `dbuser:<DbiResourceId>/*`). Here each
instance gets its own, derived from its identifier, as in AWS no two share one.

And EKS Pod Identity, which moto 5.2.5 does not implement: the five association
calls (Create/Describe/List/Update/DeletePodIdentityAssociation) on the paths and
shapes of the EKS API reference, kept per account, region and cluster. The cluster must
exist in moto's EKS backend (ResourceNotFoundException otherwise); one association per
namespace and ServiceAccount (ResourceInUseException for a second), as in EKS.

Usage: python server.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""
import base64
import datetime
import fnmatch
import hashlib
import io
import json
import os
import secrets
import sys

os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"

from moto import settings  # noqa: E402
from moto.core.authorization import ActionAuthenticatorMixin  # noqa: E402
from moto.core.exceptions import AccessDeniedError, JsonRESTError  # noqa: E402
from moto.core.responses import ActionResult  # noqa: E402
from moto.eks import urls as eks_urls  # noqa: E402
from moto.eks.exceptions import ResourceInUseException, ResourceNotFoundException  # noqa: E402
from moto.eks.models import eks_backends  # noqa: E402
from moto.eks.responses import EKSResponse  # noqa: E402
from moto.iam.models import iam_backends  # noqa: E402
from moto.rds.models import DBInstance  # noqa: E402
from moto.secretsmanager.models import secretsmanager_backends  # noqa: E402
from moto.secretsmanager.responses import SecretsManagerResponse  # noqa: E402
from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: E402
from moto.server import main  # noqa: E402

settings.INITIAL_NO_AUTH_ACTION_COUNT = 0

ACCOUNT = "123456789012"
ADMIN = "paved-e2e-admin"
ADMIN_KEY_ID = "AKIAPAVEDE2EADMIN001"
ADMIN_SECRET = "paved-e2e-admin-secret-not-a-real-one"


def bootstrap_admin():
    iam = iam_backends[ACCOUNT]["aws"]
    iam.create_user(region_name="us-east-1", user_name=ADMIN)
    iam.put_user_policy(ADMIN, "everything", json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }))
    key = iam.create_access_key(ADMIN)
    key.access_key_id = ADMIN_KEY_ID
    key.secret_access_key = ADMIN_SECRET


def secret_resource(self):
    """The ARN of the secret a Secrets Manager call names, or "*"."""
    try:
        secret_id = json.loads(self.body or "{}").get("SecretId")
    except (ValueError, AttributeError):
        secret_id = None
    if not secret_id:
        return "*"
    backend = secretsmanager_backends[self.current_account][self.region]
    secret = backend.secrets.get(secret_id)
    if secret is not None:
        return secret.arn
    if secret_id.startswith("arn:"):
        return secret_id
    return f"arn:aws:secretsmanager:{self.region}:{self.current_account}:secret:{secret_id}"


def claims(token):
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


def as_list(v):
    return v if isinstance(v, list) else [v]


def web_identity_trusted(role, token):
    c = claims(token)
    issuer = str(c.get("iss", "")).removeprefix("https://")
    if not issuer:
        return False
    values = {f"{issuer}:sub": [c.get("sub")], f"{issuer}:aud": as_list(c.get("aud"))}
    doc = role.assume_role_policy_document
    doc = json.loads(doc) if isinstance(doc, str) else doc
    for st in as_list(doc.get("Statement", [])):
        if st.get("Effect") != "Allow":
            continue
        if "sts:AssumeRoleWithWebIdentity" not in as_list(st.get("Action", [])):
            continue
        federated = as_list((st.get("Principal") or {}).get("Federated", []))
        if not any(str(f).endswith(f":oidc-provider/{issuer}") for f in federated):
            continue
        cond = st.get("Condition") or {}
        unknown = set(cond) - {"StringEquals", "StringLike"}
        if unknown:  # an operator this launcher does not evaluate: fail closed
            continue
        equals = cond.get("StringEquals", {})
        like = cond.get("StringLike", {})
        if all(any(want in values.get(k, []) for want in as_list(v)) for k, v in equals.items()) and all(
            any(fnmatch.fnmatchcase(str(have), pat) for pat in as_list(v) for have in values.get(k, []))
            for k, v in like.items()
        ):
            return True
    return False


_authorize = ActionAuthenticatorMixin._authenticate_and_authorize_action
_dispatch = DomainDispatcherApplication.__call__
RAW_BODY = "paved.raw_body"


def keep_raw_body(self, environ, start_response):
    """Keeps a form body's bytes, exactly as signed, for the signature check."""
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = 0
        if size:
            raw = environ["wsgi.input"].read(size)
            environ["wsgi.input"] = io.BytesIO(raw)
            environ[RAW_BODY] = raw
    return _dispatch(self, environ, start_response)


def authorize(self, iam_request_cls, resource="*"):
    # The token is the credential, signed or not: the trust policy decides.
    if self._get_action() == "AssumeRoleWithWebIdentity":
        role_arn = self._get_param("RoleArn")
        iam = iam_backends[self.current_account]["aws"]
        try:
            role = iam.get_role_by_arn(role_arn)
        except Exception:  # noqa: BLE001 - moto's own not-found types vary
            raise AccessDeniedError(user_arn="web-identity", action="sts:AssumeRoleWithWebIdentity")
        if not web_identity_trusted(role, self._get_param("WebIdentityToken") or ""):
            raise AccessDeniedError(
                user_arn=f"web-identity:{claims(self._get_param('WebIdentityToken') or '').get('sub')}",
                action="sts:AssumeRoleWithWebIdentity",
            )
        return None
    raw = getattr(getattr(self, "normalized_request", None), "environ", {}).get(RAW_BODY)
    if raw and not self.raw_body:
        self.raw_body = raw
    # A REST call without a body (EKS's GETs and DELETEs) was signed over an empty
    # payload; moto would sign its parsed query parameters as the body instead.
    data = self.data
    if self.method in ("GET", "HEAD", "DELETE") and not self.raw_body:
        self.data = ""
    try:
        return _authorize(self, iam_request_cls, resource)
    except AccessDeniedError as e:
        # moto answers in the query protocol's XML; Secrets Manager speaks JSON, where
        # AWS says AccessDeniedException.
        if getattr(self, "service_name", "") == "secretsmanager":
            raise JsonRESTError("AccessDeniedException", e.message) from e
        raise
    finally:
        self.data = data


_db_instance_init = DBInstance.__init__


def own_resource_id(self, *args, **kwargs):
    _db_instance_init(self, *args, **kwargs)
    digest = hashlib.sha256(f"{self.account_id}/{self.region}/{self.db_instance_identifier}".encode())
    self.dbi_resource_id = "db-" + base64.b32encode(digest.digest()).decode()[:26]


# (account, region, cluster) -> association id -> association
POD_IDENTITY = {}


def _pod_identity(resp):
    """The cluster's associations; the cluster must exist."""
    name = resp._get_param("name")
    if name not in eks_backends[resp.current_account][resp.region].clusters:
        raise ResourceNotFoundException(clusterName=name, nodegroupName=None, fargateProfileName=None,
                                        addonName=None, message=f"No cluster found for name: {name}.")
    return name, POD_IDENTITY.setdefault((resp.current_account, resp.region, name), {})


def _association(resp):
    name, assocs = _pod_identity(resp)
    aid = resp._get_param("associationId")
    if aid not in assocs:
        raise ResourceNotFoundException(clusterName=name, nodegroupName=None, fargateProfileName=None,
                                        addonName=None, message=f"Pod Identity association {aid} not found.")
    return assocs, assocs[aid]


def create_pod_identity_association(self):
    name, assocs = _pod_identity(self)
    ns, sa, role = self._get_param("namespace"), self._get_param("serviceAccount"), self._get_param("roleArn")
    if any(a["namespace"] == ns and a["serviceAccount"] == sa for a in assocs.values()):
        raise ResourceInUseException(clusterName=name, nodegroupName=None, fargateProfileName=None, addonName=None,
                                     message="Association already exists: " + f"{ns}/{sa}")
    aid = "a-" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(17))
    now = datetime.datetime.now(datetime.timezone.utc)
    a = {"clusterName": name, "namespace": ns, "serviceAccount": sa, "roleArn": role,
         "associationArn": f"arn:aws:eks:{self.region}:{self.current_account}:podidentityassociation/{name}/{aid}",
         "associationId": aid, "tags": self._get_param("tags") or {}, "createdAt": now, "modifiedAt": now,
         "disableSessionTags": bool(self._get_param("disableSessionTags"))}
    if self._get_param("targetRoleArn"):
        a["targetRoleArn"] = self._get_param("targetRoleArn")
    assocs[aid] = a
    return ActionResult({"association": a})


def describe_pod_identity_association(self):
    return ActionResult({"association": _association(self)[1]})


def update_pod_identity_association(self):
    _, a = _association(self)
    if self._get_param("roleArn"):
        a["roleArn"] = self._get_param("roleArn")
    if self._get_param("disableSessionTags") is not None:
        a["disableSessionTags"] = bool(self._get_param("disableSessionTags"))
    target = self._get_param("targetRoleArn")
    if target is not None:  # an empty one removes it
        if target:
            a["targetRoleArn"] = target
        else:
            a.pop("targetRoleArn", None)
    a["modifiedAt"] = datetime.datetime.now(datetime.timezone.utc)
    return ActionResult({"association": a})


def delete_pod_identity_association(self):
    assocs, a = _association(self)
    del assocs[a["associationId"]]
    return ActionResult({"association": a})


def list_pod_identity_associations(self):
    _, assocs = _pod_identity(self)
    ns, sa = self._get_param("namespace"), self._get_param("serviceAccount")
    found = [a for _, a in sorted(assocs.items())
             if (not ns or a["namespace"] == ns) and (not sa or a["serviceAccount"] == sa)]
    size = int(self._get_param("maxResults") or 100)
    start = int(self._get_param("nextToken") or 0)
    page = found[start:start + size]
    keys = ("clusterName", "namespace", "serviceAccount", "associationArn", "associationId")
    out = {"associations": [{k: a[k] for k in keys} for a in page]}
    if start + size < len(found):
        out["nextToken"] = str(start + size)
    return ActionResult(out)


def add_pod_identity():
    for f in (create_pod_identity_association, describe_pod_identity_association, update_pod_identity_association,
              delete_pod_identity_association, list_pod_identity_associations):
        setattr(EKSResponse, f.__name__, f)
    eks_urls.url_paths["{0}/clusters/(?P<name>[^/]+)/pod-identity-associations$"] = eks_urls.response.dispatch
    eks_urls.url_paths["{0}/clusters/(?P<name>[^/]+)/pod-identity-associations/(?P<associationId>[^/]+)$"] = \
        eks_urls.response.dispatch


if __name__ == "__main__":
    add_pod_identity()
    DBInstance.__init__ = own_resource_id
    bootstrap_admin()
    SecretsManagerResponse._determine_resource = secret_resource
    ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize
    DomainDispatcherApplication.__call__ = keep_raw_body
    main(sys.argv[1:])
