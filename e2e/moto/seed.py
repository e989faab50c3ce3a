"""Seeds moto with what a platform team provisions before Paved runs: a KMS key, a
VPC with private subnets, a DB subnet group and a security group. Idempotent: reuses
what an earlier run created. Prints the ids as JSON."""
import json

import boto3

kms = boto3.client("kms")
ec2 = boto3.client("ec2")
rds = boto3.client("rds")

aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
if "alias/paved-e2e" in aliases:
    key_id = aliases["alias/paved-e2e"]
else:
    key_id = kms.create_key(Description="paved e2e")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/paved-e2e", TargetKeyId=key_id)
key_arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]

groups = rds.describe_db_subnet_groups()["DBSubnetGroups"]
existing = [g for g in groups if g["DBSubnetGroupName"] == "paved-private-db"]
if existing:
    vpc_id = existing[0]["VpcId"]
else:
    vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
        for cidr, az in (("10.20.1.0/24", "us-east-1a"), ("10.20.2.0/24", "us-east-1b"))
    ]
    rds.create_db_subnet_group(
        DBSubnetGroupName="paved-private-db",
        DBSubnetGroupDescription="paved e2e private subnets",
        SubnetIds=subnets,
    )
sgs = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["paved-db"]}])["SecurityGroups"]
sg = sgs[0]["GroupId"] if sgs else ec2.create_security_group(
    GroupName="paved-db", Description="paved e2e databases", VpcId=vpc_id
)["GroupId"]

print(json.dumps({"kms_key_arn": key_arn, "subnet_group": "paved-private-db", "security_group": sg,
                  "vpc_id": vpc_id, "client_cidr": "10.20.0.0/16"}))
