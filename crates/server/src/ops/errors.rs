//! Declares in the OpenAPI document the error answers an operation can give because of
//! what it takes, so no operation answers a status its entry does not list:
//!
//! - a JSON body: 400 (malformed), 413 (over 2 MiB), 415 (not `application/json`), 422
//!   (wrong shape);
//! - query parameters or headers: 400 (`invalid_query`, …);
//! - path parameters: 404 (nothing there, or nothing the caller may see);
//! - a credential (`security` names `bearer`): 401 (missing, expired or revoked) and 403
//!   (a key lacking the scope, or not an administrator).
//!
//! Statuses of an operation's own rules (409, 410, 413 for uploads, 429 …) are declared by
//! the operation itself; entries it declares are kept as they are.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

pub fn declare(api: &mut OpenApi) {
    for item in api.paths.paths.values_mut() {
        let operations = [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
            item.head.as_mut(),
        ];
        for operation in operations.into_iter().flatten() {
            for (status, why) in implied(operation) {
                add(operation, status, why);
            }
        }
    }
}

/// The statuses `operation` can answer because of its inputs.
fn implied(operation: &Operation) -> Vec<(&'static str, &'static str)> {
    let mut statuses = Vec::new();
    let params = operation.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn| params.iter().any(|p| p.parameter_in == place);
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    if json_body {
        statuses.push(("400", "the body is not valid JSON"));
        statuses.push(("413", "the body is larger than 2 MiB"));
        statuses.push(("415", "the body is not `application/json`"));
        statuses.push(("422", "the body does not have the expected fields"));
    }
    if has(ParameterIn::Query) || has(ParameterIn::Header) {
        statuses.push(("400", "a query parameter or header is malformed"));
    }
    if has(ParameterIn::Path) {
        statuses.push(("404", "not found, or not visible to the caller"));
    }
    let authenticated = operation.security.as_ref().is_some_and(|requirements| {
        requirements
            .iter()
            .any(|r| serde_json::to_value(r).is_ok_and(|v| v.get("bearer").is_some()))
    });
    if authenticated {
        statuses.push(("401", "no valid credential"));
        statuses.push(("403", "the credential lacks the scope or role this needs"));
    }
    statuses
}

fn add(operation: &mut Operation, status: &str, why: &str) {
    if operation.responses.responses.contains_key(status) {
        return;
    }
    let body = ContentBuilder::new()
        .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody"))))
        .build();
    let response = ResponseBuilder::new()
        .description(why)
        .content("application/json", body)
        .build();
    operation
        .responses
        .responses
        .insert(status.to_string(), RefOr::T(response));
}
