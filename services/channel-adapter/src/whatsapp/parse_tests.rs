//! Fixture-driven tests: each fixture is a compact body in Meta's documented shape.

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/fixtures/whatsapp/", $name, ".json")).as_slice()
    };
}

const PNID: &str = "106540352242922";

fn only_message(body: &[u8]) -> WaMessage {
    match parse_webhook(body).expect("parses").as_slice() {
        [WaItem::Message(m)] => m.clone(),
        other => panic!("expected one message, got {other:?}"),
    }
}

#[test]
fn a_text_message_carries_body_sender_name_and_numeric_timestamp() {
    let m = only_message(fixture!("text"));
    assert_eq!(m.phone_number_id, PNID);
    assert_eq!(
        m.provider_message_id,
        "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjBBMEI2QjY3RjYxQjY4QkU5AA=="
    );
    assert_eq!(m.from_wa_id.as_deref(), Some("5511987654321"));
    assert_eq!(m.from_user_id, None);
    assert_eq!(m.profile_name.as_deref(), Some("Ana Conceição"));
    assert_eq!(m.timestamp_secs, 1_718_900_000);
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(m.text.as_deref(), Some("Olá, quero saber do meu pedido 😀"));
    assert_eq!(m.media, None);
    assert_eq!(m.context, None);
    assert_eq!(m.raw["text"]["body"], "Olá, quero saber do meu pedido 😀");
}

#[test]
fn an_image_exposes_its_media_id_and_caption_as_text() {
    let m = only_message(fixture!("image_caption"));
    assert_eq!(m.kind, MessageKind::Image);
    assert_eq!(m.text.as_deref(), Some("Nota fiscal"));
    let media = m.media.expect("media");
    assert_eq!(media.id, "1479537139650973");
    assert_eq!(media.mime_type.as_deref(), Some("image/jpeg"));
    assert_eq!(
        media.sha256.as_deref(),
        Some("xqyFn4SOBm8J3b2a+z0TzEp7RjXQAbfaJzLE1a1wFf8=")
    );
    assert_eq!(media.caption.as_deref(), Some("Nota fiscal"));
    assert!(!media.voice);
}

#[test]
fn a_voice_note_is_audio_flagged_voice_with_no_text() {
    let m = only_message(fixture!("audio_voice"));
    assert_eq!(m.kind, MessageKind::Audio);
    assert_eq!(m.text, None);
    let media = m.media.expect("media");
    assert!(media.voice);
    assert_eq!(media.mime_type.as_deref(), Some("audio/ogg; codecs=opus"));
}

#[test]
fn a_button_reply_gives_the_title_as_text_the_id_as_reply_id_and_the_quoted_message() {
    let m = only_message(fixture!("interactive_button_reply"));
    assert_eq!(m.kind, MessageKind::Interactive);
    assert_eq!(m.text.as_deref(), Some("Sim, confirmar"));
    assert_eq!(m.reply_id.as_deref(), Some("confirm_yes"));
    let ctx = m.context.expect("context");
    assert_eq!(ctx.message_id.as_deref(), Some("wamid.OUR1"));
    assert_eq!(ctx.from.as_deref(), Some("5511933334444"));
    assert!(!ctx.forwarded);
}

#[test]
fn a_template_quick_reply_gives_text_and_payload() {
    let m = only_message(fixture!("button_template_reply"));
    assert_eq!(m.kind, MessageKind::Button);
    assert_eq!(m.text.as_deref(), Some("Pagar agora"));
    assert_eq!(m.reply_id.as_deref(), Some("PAGAR_AGORA"));
    assert_eq!(m.context.and_then(|c| c.message_id).as_deref(), Some("wamid.HSM1"));
}

#[test]
fn a_reaction_decodes_the_escaped_emoji_and_points_at_the_message() {
    let m = only_message(fixture!("reaction"));
    assert_eq!(m.kind, MessageKind::Reaction);
    assert_eq!(m.text.as_deref(), Some("😮"));
    assert_eq!(
        m.reaction,
        Some(WaReaction {
            message_id: "wamid.OUR1".into(),
            emoji: Some("😮".into())
        })
    );
}

#[test]
fn a_removed_reaction_has_no_emoji() {
    let m = only_message(fixture!("reaction_removed"));
    assert_eq!(m.text, None);
    assert_eq!(
        m.reaction,
        Some(WaReaction {
            message_id: "wamid.OUR1".into(),
            emoji: None
        })
    );
}

#[test]
fn unsupported_and_unknown_types_are_kept_as_unsupported_with_their_raw_json() {
    let m = only_message(fixture!("unsupported"));
    assert_eq!(m.kind, MessageKind::Unsupported);
    assert_eq!(m.raw["errors"][0]["code"], 131051);

    let m = only_message(fixture!("unknown_type"));
    assert_eq!(m.kind, MessageKind::Unsupported);
    assert_eq!(m.text, None);
    assert_eq!(m.raw["type"], "hologram");
    assert_eq!(m.raw["hologram"]["frames"], 24);
}

#[test]
fn statuses_are_parsed_in_order_and_an_unknown_status_is_skipped_not_fatal() {
    let items = parse_webhook(fixture!("statuses")).unwrap();
    assert_eq!(items.len(), 5);
    let statuses: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            WaItem::Status(s) => Some((s.provider_message_id.as_str(), s.status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("wamid.OUT1", DeliveryStatus::Sent),
            ("wamid.OUT1", DeliveryStatus::Delivered),
            ("wamid.OUT1", DeliveryStatus::Read),
            ("wamid.OUT2", DeliveryStatus::Failed),
        ]
    );
    let WaItem::Status(failed) = &items[3] else { panic!() };
    assert_eq!(failed.timestamp_secs, 1_718_900_103);
    assert_eq!(failed.recipient_id.as_deref(), Some("5511987654321"));
    assert_eq!(failed.errors.len(), 1);
    assert_eq!(failed.errors[0].code, Some(131047));
    assert_eq!(failed.errors[0].title.as_deref(), Some("Re-engagement message"));
    assert!(failed.errors[0].details.as_deref().unwrap().contains("24 hours"));
    match &items[4] {
        WaItem::Skipped(s) => {
            assert_eq!(
                s.reason,
                SkipReason::UnknownStatus {
                    provider_message_id: "wamid.OUT3".into(),
                    status: "deleted".into()
                }
            );
            assert_eq!(s.raw["id"], "wamid.OUT3");
        }
        other => panic!("expected a skip, got {other:?}"),
    }
}

#[test]
fn a_bsuid_only_contact_is_identified_by_user_id_and_username() {
    let m = only_message(fixture!("bsuid_only"));
    assert_eq!(m.from_wa_id, None);
    assert_eq!(m.from_user_id.as_deref(), Some("BR.1502576394655843"));
    assert_eq!(m.username.as_deref(), Some("bruno.silva"));
    assert_eq!(m.profile_name.as_deref(), Some("Bruno"));
    assert_eq!(m.text.as_deref(), Some("oi, sou o Bruno"));
}

#[test]
fn every_entry_change_and_message_of_a_batch_is_read_and_contacts_match_their_senders() {
    let items = parse_webhook(fixture!("multi_batch")).unwrap();
    assert_eq!(items.len(), 4);
    let WaItem::Message(m1) = &items[0] else {
        panic!("{:?}", items[0])
    };
    let WaItem::Message(m2) = &items[1] else {
        panic!("{:?}", items[1])
    };
    let WaItem::Status(s) = &items[2] else {
        panic!("{:?}", items[2])
    };
    let WaItem::Message(m3) = &items[3] else {
        panic!("{:?}", items[3])
    };
    assert_eq!(
        (m1.provider_message_id.as_str(), m1.profile_name.as_deref()),
        ("wamid.M1", Some("Ana Conceição"))
    );
    assert_eq!(
        (m2.provider_message_id.as_str(), m2.profile_name.as_deref()),
        ("wamid.M2", Some("Carlos"))
    );
    assert_eq!(m2.from_wa_id.as_deref(), Some("552199887766"));
    assert_eq!(
        (s.provider_message_id.as_str(), s.status),
        ("wamid.OUT9", DeliveryStatus::Delivered)
    );
    assert_eq!(m3.phone_number_id, "106540352242999");
    assert_eq!(m3.kind, MessageKind::Location);
    assert_eq!(m3.raw["location"]["name"], "MASP");
}

#[test]
fn a_template_status_change_names_the_account_the_template_and_its_new_status() {
    let items = parse_webhook(fixture!("template_status_update")).unwrap();
    assert_eq!(
        items,
        [WaItem::TemplateStatus(crate::whatsapp::parse::TemplateStatus {
            business_account_id: "102290129340398".into(),
            template_id: "1279829343219734".into(),
            name: "lembrete_pagamento".into(),
            language: "pt_BR".into(),
            status: "APPROVED".into(),
            reason: None,
        })]
    );
}

#[test]
fn other_fields_are_ignored_by_name() {
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"x":1},"field":"account_update"}]}]}"#;
    let items = parse_webhook(body).unwrap();
    assert_eq!(
        items,
        [WaItem::Ignored {
            field: "account_update".into()
        }]
    );
}

#[test]
fn value_level_errors_are_reported_as_channel_errors() {
    let items = parse_webhook(fixture!("value_errors")).unwrap();
    match items.as_slice() {
        [WaItem::ChannelError { phone_number_id, error }] => {
            assert_eq!(phone_number_id, PNID);
            assert_eq!(error.code, Some(131000));
            assert_eq!(error.details.as_deref(), Some("Unknown error"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_forwarded_message_has_a_forwarded_context() {
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"9"},"contacts":[{"wa_id":"5511987654321"}],"messages":[{"context":{"frequently_forwarded":true},"from":"5511987654321","id":"wamid.F","timestamp":"1","type":"video","video":{"id":"77","caption":"olha"}}]}}]}]}"#;
    let m = only_message(body);
    assert_eq!(
        m.context,
        Some(WaContext {
            message_id: None,
            from: None,
            forwarded: true
        })
    );
    assert_eq!(m.text.as_deref(), Some("olha"));
    assert_eq!(m.media.map(|x| x.id).as_deref(), Some("77"));
}

#[test]
fn contacts_match_senders_across_the_ninth_digit() {
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"9"},"contacts":[{"profile":{"name":"Z\u00e9"},"wa_id":"551187654321"}],"messages":[{"from":"5511987654321","id":"wamid.N","timestamp":"5","type":"text","text":{"body":"x"}}]}}]}]}"#;
    let m = only_message(body);
    assert_eq!(m.profile_name.as_deref(), Some("Zé"));
    assert_eq!(
        m.from_wa_id.as_deref(),
        Some("5511987654321"),
        "the message's own from wins"
    );
}

#[test]
fn malformed_bodies_are_parse_errors_not_panics() {
    let cases: &[&[u8]] = &[
        b"",
        b"not json",
        b"[]",
        b"{}",
        br#"{"object":"page","entry":[]}"#,
        br#"{"object":"whatsapp_business_account","entry":{}}"#,
        br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[]}}]}]}"#,
        br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"messages":{}}}]}]}"#,
        br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{}}]}]}"#,
    ];
    for body in cases {
        let err = parse_webhook(body).expect_err(std::str::from_utf8(body).unwrap());
        assert_eq!(err.code(), ErrorCode::MalformedPayload);
    }
    assert!(matches!(
        parse_webhook(br#"{"object":"instagram","entry":[]}"#),
        Err(ParseError::WrongObject { object }) if object == "instagram"
    ));
}

#[test]
fn a_bad_item_is_skipped_with_its_reason_while_the_rest_of_the_batch_survives() {
    let body = br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"9"},"messages":[
        {"from":"1","timestamp":"1","type":"text","text":{"body":"no id"}},
        {"from":"1","id":"wamid.T","timestamp":"soon","type":"text"},
        {"id":"wamid.X","timestamp":"1","type":"text","text":{"body":"nobody"}},
        {"from":"1","id":"wamid.OK","timestamp":1,"type":"text","text":{"body":"fine"}}
    ],"statuses":[{"id":"wamid.S","timestamp":"1"}]}}]}]}"#;
    let items = parse_webhook(body).unwrap();
    assert_eq!(items.len(), 5);
    assert!(matches!(
        &items[0],
        WaItem::Skipped(WaSkipped {
            reason: SkipReason::MalformedMessage { .. },
            ..
        })
    ));
    assert!(matches!(
        &items[1],
        WaItem::Skipped(WaSkipped {
            reason: SkipReason::MalformedMessage { .. },
            ..
        })
    ));
    assert!(matches!(
        &items[2],
        WaItem::Skipped(WaSkipped { reason: SkipReason::NoSender { provider_message_id }, .. }) if provider_message_id == "wamid.X"
    ));
    assert!(matches!(&items[3], WaItem::Message(m) if m.text.as_deref() == Some("fine") && m.timestamp_secs == 1));
    assert!(matches!(
        &items[4],
        WaItem::Skipped(WaSkipped {
            reason: SkipReason::MalformedStatus { .. },
            ..
        })
    ));
}

#[test]
fn an_empty_batch_and_missing_optional_arrays_are_fine() {
    assert_eq!(
        parse_webhook(br#"{"object":"whatsapp_business_account","entry":[]}"#).unwrap(),
        []
    );
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"9"}}}]}]}"#;
    assert_eq!(parse_webhook(body).unwrap(), []);
}

#[test]
fn testkit_builders_produce_bodies_this_parser_reads() {
    use atende_testkit::whatsapp as wa;
    let body = wa::text_message_webhook("123", "5511987654321", "Ana", "wamid.K", "olá 😮", 1_700_000_000);
    let m = only_message(&body);
    assert_eq!(
        (
            m.phone_number_id.as_str(),
            m.from_wa_id.as_deref(),
            m.profile_name.as_deref(),
            m.text.as_deref()
        ),
        ("123", Some("5511987654321"), Some("Ana"), Some("olá 😮"))
    );
    assert_eq!(m.timestamp_secs, 1_700_000_000);

    let body = wa::bsuid_text_message_webhook("123", "BR.99", "ana.s", "Ana", "wamid.B", "oi", 1);
    let m = only_message(&body);
    assert_eq!(
        (m.from_wa_id, m.from_user_id.as_deref(), m.username.as_deref()),
        (None, Some("BR.99"), Some("ana.s"))
    );

    let body = wa::unknown_type_webhook("123", "5511987654321", "Ana", "wamid.U", "hologram", 1);
    assert_eq!(only_message(&body).kind, MessageKind::Unsupported);

    let body = wa::status_webhook("123", "wamid.S", "read", "5511987654321", 2);
    assert!(matches!(
        parse_webhook(&body).unwrap().as_slice(),
        [WaItem::Status(s)] if s.status == DeliveryStatus::Read && s.provider_message_id == "wamid.S"
    ));

    let body = wa::failed_status_webhook(
        "123",
        "wamid.S",
        "5511987654321",
        3,
        131047,
        "Re-engagement message",
        "too late",
    );
    assert!(matches!(
        parse_webhook(&body).unwrap().as_slice(),
        [WaItem::Status(s)] if s.status == DeliveryStatus::Failed && s.errors[0].code == Some(131047)
    ));
}
