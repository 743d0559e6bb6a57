use super::*;

fn parse(text: &str) -> Result<AgentCall, ContainerCallError> {
    parse_call(text.as_bytes())
}

fn nested(parent: &str, child: &str) -> ContainerId {
    ContainerId::nested(ContainerId::new(parent), child)
}

#[test]
fn a_session_launch_is_typed_with_its_tty() {
    let call = parse(
        r#"{"type":"LAUNCH_NESTED_CONTAINER_SESSION","launch_nested_container_session":{
            "container_id":{"value":"c1","parent":{"value":"p"}},
            "command":{"value":"echo hi","shell":true},
            "container":{"type":"MESOS","tty_info":{"window_size":{"rows":24,"columns":80}}},
            "unknown_field":1}}"#,
    )
    .unwrap();
    let AgentCall::Container(call) = call else {
        panic!("{call:?}");
    };
    let ContainerCall::LaunchSession(l) = *call else {
        panic!("{call:?}");
    };
    assert_eq!(l.container_id, nested("p", "c1"));
    assert_eq!(l.command.unwrap().value.as_deref(), Some("echo hi"));
    let size = WindowSize {
        rows: 24,
        columns: 80,
    };
    let launch = Launch {
        container_id: nested("p", "c1"),
        command: None,
        container: Some(crate::mesos::ContainerInfo {
            tty_info: Some(serde_json::json!({"window_size": size})),
            ..Default::default()
        }),
        resources: vec![],
    };
    assert_eq!(launch.tty().unwrap().window_size, Some(size));
}

#[test]
fn the_nested_forms_want_a_parent_and_say_so_as_mesos() {
    let e = parse(
        r#"{"type":"LAUNCH_NESTED_CONTAINER_SESSION","launch_nested_container_session":{"container_id":{"value":"c"}}}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Failed to validate agent::Call: Expecting 'launch_nested_container_session.container_id.parent' to be present"
    );
    let e = parse(r#"{"type":"WAIT_NESTED_CONTAINER"}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Failed to validate agent::Call: Expecting 'wait_nested_container' to be present"
    );
    // LAUNCH_CONTAINER without a parent is a standalone container.
    let call =
        parse(r#"{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":"s"}}}"#)
            .unwrap();
    assert!(
        matches!(call, AgentCall::Container(c) if matches!(*c, ContainerCall::Launch(_, Form::Container)))
    );
}

#[test]
fn container_ids_follow_mesos_rules() {
    let e = parse(
        r#"{"type":"KILL_CONTAINER","kill_container":{"container_id":{"value":"a.b","parent":{"value":"p"}}}}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Failed to validate agent::Call: 'kill_container.container_id' is invalid: 'ContainerID.value' 'a.b' contains invalid characters"
    );
    let e = parse(r#"{"type":"WAIT_CONTAINER","wait_container":{"container_id":{"value":"x","parent":{"value":""}}}}"#)
        .unwrap_err();
    assert!(
        e.to_string()
            .ends_with("'ContainerID.parent' is invalid: ID must not be empty"),
        "{e}"
    );
    let e = parse(r#"{"type":"WAIT_CONTAINER","wait_container":{}}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Failed to convert JSON into Call protobuf: Missing required fields: wait_container.container_id"
    );
    assert!(matches!(parse("{"), Err(ContainerCallError::Json(_))));
    assert_eq!(nested("p", "c").to_string(), "p.c");
}

#[test]
fn kill_defaults_to_sigkill_and_other_calls_pass_through() {
    let call = parse(
        r#"{"type":"KILL_NESTED_CONTAINER","kill_nested_container":{"container_id":{"value":"c","parent":{"value":"p"}}}}"#,
    )
    .unwrap();
    assert_eq!(
        call,
        AgentCall::Container(Box::new(ContainerCall::Kill(
            nested("p", "c"),
            9,
            Form::Nested
        )))
    );
    assert_eq!(
        parse(r#"{"type":"GET_STATE"}"#).unwrap(),
        AgentCall::Other("GET_STATE".into())
    );
}

#[test]
fn attach_input_records_round_trip() {
    let id = nested("p", "c");
    let first = serde_json::to_vec(&attach_input_first(&id)).unwrap();
    assert_eq!(parse_call(&first).unwrap(), AgentCall::AttachInput(id));
    for record in [
        InputRecord::Stdin(b"hello\n".to_vec()),
        InputRecord::Stdin(Vec::new()),
        InputRecord::Window(WindowSize {
            rows: 50,
            columns: 132,
        }),
        InputRecord::Heartbeat,
    ] {
        let bytes = serde_json::to_vec(&attach_input_record(&record)).unwrap();
        assert_eq!(parse_input_record(&bytes).unwrap(), record);
    }
    // A PROCESS_IO record cannot open the stream.
    let later = serde_json::to_vec(&attach_input_record(&InputRecord::Heartbeat)).unwrap();
    assert!(parse_call(&later).is_err());
}

#[test]
fn bad_input_records_get_the_switchboards_messages() {
    let rec = |pio: serde_json::Value| {
        let call = serde_json::json!({"type":"ATTACH_CONTAINER_INPUT",
            "attach_container_input":{"type":"PROCESS_IO","process_io":pio}});
        parse_input_record(&serde_json::to_vec(&call).unwrap()).unwrap_err()
    };
    assert_eq!(
        rec(serde_json::json!({"type":"DATA","data":{"type":"STDOUT","data":""}})),
        "Expecting 'process_io.data.type' to be 'STDIN'"
    );
    assert_eq!(
        rec(serde_json::json!({"type":"CONTROL","control":{"type":"TTY_INFO","tty_info":{}}})),
        "Expecting 'tty_info.window_size' to be present"
    );
    assert_eq!(
        rec(serde_json::json!({})),
        "Expecting 'process_io.type' to be present"
    );
}

#[test]
fn output_records_and_wait_answers() {
    let r = ProcessIo::data(Stream::Stdout, b"hi\n");
    let text = serde_json::to_string(&r).unwrap();
    assert_eq!(
        text,
        r#"{"type":"DATA","data":{"type":"STDOUT","data":"aGkK"}}"#
    );
    let back: ProcessIo = serde_json::from_str(&text).unwrap();
    assert_eq!(back.bytes(), Some((Stream::Stdout, b"hi\n".to_vec())));
    let a = WaitAnswer {
        exit_status: Some(3 << 8),
        ..Default::default()
    };
    let body = wait_response(Form::Container, &a);
    assert_eq!(
        body.to_string(),
        r#"{"type":"WAIT_CONTAINER","wait_container":{"exit_status":768}}"#
    );
    let back = parse_wait_response(body.to_string().as_bytes()).unwrap();
    assert_eq!(back.code(), Some(3));
    let killed = WaitAnswer {
        exit_status: Some(9),
        ..Default::default()
    };
    assert_eq!(killed.code(), Some(137));
}

#[test]
fn calls_written_back_parse_to_themselves() {
    let launch = Launch {
        container_id: nested("p", "c"),
        command: Some(crate::mesos::CommandInfo {
            value: Some("cat".into()),
            ..Default::default()
        }),
        container: Some(crate::mesos::ContainerInfo {
            kind: Some("MESOS".into()),
            tty_info: Some(serde_json::json!({"window_size": {"rows": 5, "columns": 6}})),
            ..Default::default()
        }),
        resources: vec![],
    };
    for call in [
        ContainerCall::LaunchSession(launch.clone()),
        ContainerCall::Launch(launch, Form::Nested),
        ContainerCall::Wait(nested("p", "c"), Form::Container),
        ContainerCall::Kill(nested("p", "c"), 15, Form::Nested),
        ContainerCall::Remove(ContainerId::new("s"), Form::Container),
        ContainerCall::AttachOutput(nested("p", "c")),
    ] {
        let text = serde_json::to_vec(&call_json(&call)).unwrap();
        assert_eq!(
            parse_call(&text).unwrap(),
            AgentCall::Container(Box::new(call.clone()))
        );
    }
}
