//! Errors of the AMQP front end, as RabbitMQ reports them: a reply code (AMQP 0-9-1 §1.2 and
//! RabbitMQ's additions), a reply text that starts with the code's name, and the class and
//! method that failed. A [`Scope::Channel`] error closes the channel (`channel.close`), a
//! [`Scope::Connection`] error the connection (`connection.close`).

/// Which close an error causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Channel,
    Connection,
}

/// A soft (channel) or hard (connection) AMQP error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct AmqpError {
    pub scope: Scope,
    /// 311 CONTENT_TOO_LARGE, 320 CONNECTION_FORCED, 403 ACCESS_REFUSED, 404 NOT_FOUND,
    /// 405 RESOURCE_LOCKED, 406 PRECONDITION_FAILED, 501 FRAME_ERROR, 502 SYNTAX_ERROR,
    /// 503 COMMAND_INVALID, 504 CHANNEL_ERROR, 505 UNEXPECTED_FRAME, 506 RESOURCE_ERROR,
    /// 530 NOT_ALLOWED, 540 NOT_IMPLEMENTED, 541 INTERNAL_ERROR.
    pub code: u16,
    /// `NAME - detail`, as RabbitMQ writes it (at most 255 bytes on the wire).
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl AmqpError {
    fn new(scope: Scope, code: u16, name: &str, detail: impl AsRef<str>) -> Self {
        let mut text = format!("{name} - {}", detail.as_ref());
        if text.len() > 255 {
            let mut cut = 255;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        Self {
            scope,
            code,
            text,
            class_id: 0,
            method_id: 0,
        }
    }

    /// Names the failing method (`class_id`, `method_id`) in the close.
    pub fn on(mut self, class_id: u16, method_id: u16) -> Self {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }

    pub fn not_found(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Channel, 404, "NOT_FOUND", detail)
    }
    pub fn precondition_failed(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Channel, 406, "PRECONDITION_FAILED", detail)
    }
    pub fn access_refused(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Channel, 403, "ACCESS_REFUSED", detail)
    }
    pub fn resource_locked(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Channel, 405, "RESOURCE_LOCKED", detail)
    }
    /// A channel error the broker itself caused (storage, coordinator): 541 on the channel.
    pub fn internal(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Channel, 541, "INTERNAL_ERROR", detail)
    }
    pub fn command_invalid(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Connection, 503, "COMMAND_INVALID", detail)
    }
    pub fn channel_error(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Connection, 504, "CHANNEL_ERROR", detail)
    }
    pub fn unexpected_frame(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Connection, 505, "UNEXPECTED_FRAME", detail)
    }
    pub fn not_allowed(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Connection, 530, "NOT_ALLOWED", detail)
    }
    pub fn not_implemented(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Connection, 540, "NOT_IMPLEMENTED", detail)
    }
    pub fn frame_error(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Connection, 501, "FRAME_ERROR", detail)
    }
    pub fn syntax_error(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Connection, 502, "SYNTAX_ERROR", detail)
    }
    pub fn connection_forced(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Connection, 320, "CONNECTION_FORCED", detail)
    }
    pub fn connection_access_refused(detail: impl AsRef<str>) -> Self {
        Self::new(Scope::Connection, 403, "ACCESS_REFUSED", detail)
    }
}

/// The result of an AMQP operation.
pub type AmqpResult<T> = Result<T, AmqpError>;
