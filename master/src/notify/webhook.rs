//! A webhook: one POST per change of state, in Alertmanager's webhook
//! format (version 4), so that receivers written for Alertmanager take
//! it as it is.

use super::queue::Deliver;
use super::shape::{self, Origin};
use super::{DeliverError, http_error};
use cluster_model::alerts::Notice;
use std::sync::Arc;
use std::time::SystemTime;

pub struct Webhook {
    pub client: reqwest::Client,
    pub url: reqwest::Url,
    pub origin: Arc<Origin>,
}

#[async_trait::async_trait]
impl Deliver for Webhook {
    async fn deliver(&self, notices: &[Notice], now: SystemTime) -> Result<(), DeliverError> {
        for notice in notices {
            let response = self
                .client
                .post(self.url.clone())
                .json(&shape::webhook(notice, &self.origin, now))
                .send()
                .await
                .map_err(DeliverError::Request)?;
            http_error(response).await?;
        }
        Ok(())
    }
}
