"""Reads (or, for drift tests, changes) moto's RDS state for the e2e tests.

  query.py instances              every DB instance, as JSON
  query.py snapshots              every DB snapshot
  query.py parameters GROUP       a parameter group's user-set parameters
  query.py secret ARN             describe_secret
  query.py secret-value ARN       get_secret_value's SecretString, parsed (what a
                                  reader of the secret gets; tests compare deliveries)
  query.py role NAME              an IAM role, its tags and its inline policy `paved`
                                  (null when there is no such role)
  query.py delete-role NAME       delete an IAM role behind Paved's back
  query.py widen-role NAME        attach a managed policy allowing everything and add
                                  an inline one, behind Paved's back
  query.py create-role NAME PATH UID TRUST
                                  a role as an earlier claim (UID) left it
  query.py read-as ROLE TOKEN SECRET
                                  assume ROLE with web identity TOKEN (unsigned, as a
                                  pod would), then GetSecretValue SECRET as that role:
                                  {"assumed": bool, "read": bool, "error": code}; the
                                  value is never printed
  query.py put-secret NAME        create a secret (as the platform's admin)
  query.py platform-role NAME     (made once) the role a platform names in a Composition's
                                  workloadIdentity: trusted by every ServiceAccount of the
                                  plane's issuer, allowed every secret; prints its ARN
  query.py security-group NAME    a security group by name: ID, tags and rules (null
                                  when there is none)
  query.py widen-group ID         open a security group to everything, behind Paved's back
  query.py eks-cluster NAME       (made once) an EKS cluster; prints its ARN
  query.py pod-identity CLUSTER   the cluster's Pod Identity associations, described
  query.py pod-identity-point CLUSTER ID ROLE
                                  point an association at another role, session tags
                                  off, behind Paved's back
  query.py pod-identity-create CLUSTER NS SA ROLE
                                  an association made by someone else
  query.py pod-identity-delete CLUSTER ID
                                  delete an association behind Paved's back
  query.py drift ID               change mutable fields behind Paved's back
  query.py create ID UID KEYARN   create an instance as if by another claim
  query.py create-legacy ID [N]   an instance made by hand before Paved: unencrypted,
                                  public, 1 day of backups, unprotected, untagged (with
                                  N: N of them, ID-0 to ID-<N-1>, for the bench)
  query.py create-legacy-encrypted ID KEYARN CLASS GB
                                  the same, but encrypted with KEYARN, sized CLASS and
                                  GB, with a database "orders", a tag of its own and
                                  a parameter group that does not force TLS
"""
import json
import sys

import boto3

rds = boto3.client("rds")
cmd = sys.argv[1]
if cmd == "instances":
    out = []
    for page in rds.get_paginator("describe_db_instances").paginate():
        out.extend(page["DBInstances"])
elif cmd == "snapshots":
    out = rds.describe_db_snapshots()["DBSnapshots"]
elif cmd == "parameters":
    out = [
        p
        for p in rds.describe_db_parameters(DBParameterGroupName=sys.argv[2], Source="user")["Parameters"]
    ]
elif cmd == "secret":
    out = boto3.client("secretsmanager").describe_secret(SecretId=sys.argv[2])
elif cmd == "secret-value":
    got = boto3.client("secretsmanager").get_secret_value(SecretId=sys.argv[2])
    out = json.loads(got["SecretString"])
elif cmd == "role":
    iam = boto3.client("iam")
    try:
        role = iam.get_role(RoleName=sys.argv[2])["Role"]
    except iam.exceptions.NoSuchEntityException:
        role = None
    if role is not None:
        role["Tags"] = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=sys.argv[2])["Tags"]}
        try:
            role["Policy"] = iam.get_role_policy(RoleName=sys.argv[2], PolicyName="paved")["PolicyDocument"]
        except iam.exceptions.NoSuchEntityException:
            role["Policy"] = None
        role["Attached"] = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=sys.argv[2])["AttachedPolicies"]]
        role["Inline"] = iam.list_role_policies(RoleName=sys.argv[2])["PolicyNames"]
    out = role
elif cmd == "create-role":
    iam = boto3.client("iam")
    out = iam.create_role(
        RoleName=sys.argv[2], Path=sys.argv[3], AssumeRolePolicyDocument=sys.argv[5],
        Tags=[{"Key": "paved.dev/claim-uid", "Value": sys.argv[4]}],
    )["Role"]
elif cmd == "read-as":
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import ClientError
    sts = boto3.client("sts", config=Config(signature_version=UNSIGNED))
    out = {"assumed": False, "read": False, "error": None}
    try:
        creds = sts.assume_role_with_web_identity(
            RoleArn=sys.argv[2], RoleSessionName="e2e", WebIdentityToken=sys.argv[3])["Credentials"]
        out["assumed"] = True
        sm = boto3.client("secretsmanager", aws_access_key_id=creds["AccessKeyId"],
                          aws_secret_access_key=creds["SecretAccessKey"],
                          aws_session_token=creds["SessionToken"])
        sm.get_secret_value(SecretId=sys.argv[4])
        out["read"] = True
    except ClientError as e:
        out["error"] = e.response["Error"]["Code"]
elif cmd == "platform-role":
    iam = boto3.client("iam")
    issuer = "kubernetes.default.svc.cluster.local"
    account = boto3.client("sts").get_caller_identity()["Account"]
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
        "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{issuer}"},
        "Condition": {"StringLike": {f"{issuer}:sub": "system:serviceaccount:*:*"},
                      "StringEquals": {f"{issuer}:aud": "sts.amazonaws.com"}}}]}
    try:
        iam.create_role(RoleName=sys.argv[2], AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName=sys.argv[2], PolicyName="platform", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "kms:Decrypt"]}]}))
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    out = iam.get_role(RoleName=sys.argv[2])["Role"]["Arn"]
elif cmd == "put-secret":
    sm = boto3.client("secretsmanager")
    try:
        out = sm.create_secret(Name=sys.argv[2], SecretString=json.dumps({"token": "e2e-other-team"}))["ARN"]
    except sm.exceptions.ResourceExistsException:
        out = sm.describe_secret(SecretId=sys.argv[2])["ARN"]
elif cmd == "widen-role":
    iam = boto3.client("iam")
    everything = json.dumps({"Version": "2012-10-17",
                             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    try:
        arn = iam.create_policy(PolicyName="e2e-everything", PolicyDocument=everything)["Policy"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        arn = f"arn:aws:iam::{boto3.client('sts').get_caller_identity()['Account']}:policy/e2e-everything"
    iam.attach_role_policy(RoleName=sys.argv[2], PolicyArn=arn)
    iam.put_role_policy(RoleName=sys.argv[2], PolicyName="e2e-extra", PolicyDocument=everything)
    out = {"attached": arn}
elif cmd == "delete-role":
    iam = boto3.client("iam")
    for p in iam.list_attached_role_policies(RoleName=sys.argv[2])["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=sys.argv[2], PolicyArn=p["PolicyArn"])
    for name in iam.list_role_policies(RoleName=sys.argv[2])["PolicyNames"]:
        iam.delete_role_policy(RoleName=sys.argv[2], PolicyName=name)
    iam.delete_role(RoleName=sys.argv[2])
    out = {"deleted": sys.argv[2]}
elif cmd == "security-group":
    found = boto3.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [sys.argv[2]]}]
    )["SecurityGroups"]
    out = found[0] if found else None
elif cmd == "widen-group":
    out = boto3.client("ec2").authorize_security_group_ingress(
        GroupId=sys.argv[2],
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535,
                        "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )["Return"]
elif cmd == "eks-cluster":
    eks = boto3.client("eks")
    if sys.argv[2] not in eks.list_clusters()["clusters"]:
        eks.create_cluster(name=sys.argv[2], roleArn=f"arn:aws:iam::123456789012:role/{sys.argv[2]}-cluster",
                           resourcesVpcConfig={"subnetIds": []})
    out = eks.describe_cluster(name=sys.argv[2])["cluster"]["arn"]
elif cmd == "pod-identity":
    # Every association of the cluster, described (the list does not show roles).
    eks = boto3.client("eks")
    out = [eks.describe_pod_identity_association(clusterName=sys.argv[2], associationId=a["associationId"])["association"]
           for a in eks.list_pod_identity_associations(clusterName=sys.argv[2])["associations"]]
elif cmd == "pod-identity-point":
    out = boto3.client("eks").update_pod_identity_association(
        clusterName=sys.argv[2], associationId=sys.argv[3], roleArn=sys.argv[4],
        disableSessionTags=True)["association"]
elif cmd == "pod-identity-create":
    out = boto3.client("eks").create_pod_identity_association(
        clusterName=sys.argv[2], namespace=sys.argv[3], serviceAccount=sys.argv[4],
        roleArn=sys.argv[5])["association"]
elif cmd == "pod-identity-delete":
    out = boto3.client("eks").delete_pod_identity_association(
        clusterName=sys.argv[2], associationId=sys.argv[3])["association"]
elif cmd == "drift":
    out = rds.modify_db_instance(
        DBInstanceIdentifier=sys.argv[2],
        DBInstanceClass="db.t3.medium",
        BackupRetentionPeriod=1,
        ApplyImmediately=True,
    )["DBInstance"]
elif cmd == "create-legacy":
    # A database made by hand, long before Paved: unencrypted, public, a day of
    # backups, no deletion protection, no tags.
    ids = [sys.argv[2]] if len(sys.argv) < 4 else [f"{sys.argv[2]}-{i}" for i in range(int(sys.argv[3]))]
    out = [rds.create_db_instance(
        DBInstanceIdentifier=db_id,
        Engine="postgres",
        EngineVersion="16",
        DBInstanceClass="db.t4g.medium",
        AllocatedStorage=20,
        MasterUsername="legacy",
        MasterUserPassword="legacy-password-1",
        StorageEncrypted=False,
        PubliclyAccessible=True,
        BackupRetentionPeriod=1,
        DeletionProtection=False,
    )["DBInstance"] for db_id in ids]
    out = out[0] if len(sys.argv) < 4 else [d["DBInstanceIdentifier"] for d in out]
elif cmd == "create-legacy-encrypted":
    # Its own parameter group, made by hand too, with TLS not forced.
    group = f"{sys.argv[2]}-params"
    rds.create_db_parameter_group(DBParameterGroupName=group, DBParameterGroupFamily="postgres16",
                                  Description="made by hand")
    rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=[
        {"ParameterName": "rds.force_ssl", "ParameterValue": "0", "ApplyMethod": "immediate"},
        {"ParameterName": "shared_preload_libraries", "ParameterValue": "pg_stat_statements",
         "ApplyMethod": "pending-reboot"}])
    out = rds.create_db_instance(
        DBParameterGroupName=group,
        DBInstanceIdentifier=sys.argv[2],
        Engine="postgres",
        EngineVersion="16",
        DBInstanceClass=sys.argv[4],
        AllocatedStorage=int(sys.argv[5]),
        DBName="orders",
        MasterUsername="legacy",
        MasterUserPassword="legacy-password-1",
        StorageEncrypted=True,
        KmsKeyId=sys.argv[3],
        PubliclyAccessible=True,
        BackupRetentionPeriod=1,
        DeletionProtection=False,
        Tags=[{"Key": "Team", "Value": "orders"}],
    )["DBInstance"]
elif cmd == "create":
    out = rds.create_db_instance(
        DBInstanceIdentifier=sys.argv[2],
        Engine="postgres",
        EngineVersion="16",
        DBInstanceClass="db.t4g.medium",
        AllocatedStorage=50,
        MasterUsername="other",
        ManageMasterUserPassword=True,
        MasterUserSecretKmsKeyId=sys.argv[4],
        StorageEncrypted=True,
        KmsKeyId=sys.argv[4],
        Tags=[{"Key": "paved.dev/claim-uid", "Value": sys.argv[3]}],
    )["DBInstance"]
else:
    sys.exit(f"unknown command {cmd}")
print(json.dumps(out, default=str))
