//! Model aliases: what `finch.toml` says about each model, and where to send its requests.
//!
//! `[models.<alias>]` names a provider preset and the provider's model. Secrets are never in
//! the file: [`ModelConfig::endpoint`] asks the caller for each variable by name (the binary
//! reads the environment; the engine never does), so a missing key is an error that names the
//! variable to set.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The providers Finch knows how to reach; all speak OpenAI's Chat Completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// api.openai.com, or `OPENAI_BASE_URL`. Key: `OPENAI_API_KEY`.
    Openai,
    /// An Azure OpenAI deployment. `AZURE_OPENAI_ENDPOINT`, `AZURE_OPENAI_API_KEY`,
    /// `AZURE_OPENAI_API_VERSION`, and `AZURE_OPENAI_DEPLOYMENT_NAME` when `model` is empty.
    Azure,
    /// A local Ollama (`OLLAMA_BASE_URL`, default `http://localhost:11434`), no key.
    Ollama,
    /// A vLLM server at `base_url`; key optional.
    Vllm,
    /// A llama.cpp server at `base_url`; key optional.
    Llamacpp,
    /// Gemini's OpenAI-compatible endpoint. Key: `GOOGLE_API_KEY`.
    Gemini,
    /// Any other server that speaks Chat Completions, at `base_url`.
    OpenaiCompatible,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Azure => "azure",
            Provider::Ollama => "ollama",
            Provider::Vllm => "vllm",
            Provider::Llamacpp => "llamacpp",
            Provider::Gemini => "gemini",
            Provider::OpenaiCompatible => "openai_compatible",
        }
    }
}

/// How a model is asked for JSON that matches a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// `response_format: { type: json_schema, json_schema: { … } }`.
    JsonSchema,
    /// The schema goes into the system message, with an instruction to answer with JSON only.
    Instructions,
}

/// One `[models.<alias>]` table of `finch.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub provider: Provider,
    /// The provider's model name; for Azure, the deployment name.
    #[serde(default)]
    pub model: String,
    /// Where the server is, for providers without a fixed address.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable holding the key, instead of the provider's usual one.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Time allowed for one attempt, in seconds.
    #[serde(default = "ModelConfig::default_timeout_secs")]
    pub timeout_secs: f64,
    /// Attempts in all for a retryable fault (timeout, 429, 5xx, cut stream).
    #[serde(default = "ModelConfig::default_attempts")]
    pub attempts: u32,
    /// Whether to stream the reply (token events as it arrives).
    #[serde(default = "ModelConfig::default_stream")]
    pub stream: bool,
    /// How to ask for JSON; the default depends on the provider.
    #[serde(default)]
    pub structured_output: Option<StructuredOutput>,
}

impl ModelConfig {
    fn default_timeout_secs() -> f64 {
        60.0
    }
    fn default_attempts() -> u32 {
        3
    }
    fn default_stream() -> bool {
        true
    }

    /// Resolves where and how to send requests, asking `secrets` for each variable it needs.
    /// A `base_url` in the file wins over the provider's variable and its default.
    pub fn endpoint(
        &self,
        alias: &str,
        secrets: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Endpoint, ConfigError> {
        let vars = Vars { alias, secrets };
        let Address {
            url,
            auth,
            query,
            model,
        } = match self.provider {
            Provider::Openai => {
                let base = self.base_or(vars.get("OPENAI_BASE_URL"), "https://api.openai.com/v1");
                Address::new(
                    chat_url(&base),
                    Auth::Bearer(vars.required(&self.key_var("OPENAI_API_KEY"))?),
                    self.model.clone(),
                )
            }
            Provider::Azure => self.azure(&vars)?,
            Provider::Ollama => {
                let base = self.base_or(vars.get("OLLAMA_BASE_URL"), "http://localhost:11434");
                let base = base.trim_end_matches('/');
                let base = if base.ends_with("/v1") {
                    base.to_owned()
                } else {
                    format!("{base}/v1")
                };
                Address::new(chat_url(&base), Auth::None, self.model.clone())
            }
            Provider::Gemini => {
                let base = self.base_or(None, "https://generativelanguage.googleapis.com/v1beta/openai");
                Address::new(
                    chat_url(&base),
                    Auth::Bearer(vars.required(&self.key_var("GOOGLE_API_KEY"))?),
                    self.model.clone(),
                )
            }
            Provider::Vllm | Provider::Llamacpp | Provider::OpenaiCompatible => {
                let base = self.base_url.clone().ok_or_else(|| ConfigError::MissingBaseUrl {
                    alias: alias.to_owned(),
                })?;
                let auth = match &self.api_key_env {
                    Some(name) => Auth::Bearer(vars.required(name)?),
                    None => Auth::None,
                };
                Address::new(chat_url(&base), auth, self.model.clone())
            }
        };
        let timeout = Duration::try_from_secs_f64(self.timeout_secs)
            .ok()
            .filter(|timeout| !timeout.is_zero())
            .ok_or_else(|| ConfigError::InvalidTimeout {
                alias: alias.to_owned(),
            })?;
        Ok(Endpoint {
            provider: self.provider.name().to_owned(),
            url,
            auth,
            query,
            model,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            timeout,
            attempts: self.attempts.max(1),
            stream: self.stream,
            structured_output: self.structured_output.unwrap_or(StructuredOutput::JsonSchema),
        })
    }

    /// Azure's deployment URL, `api-key` header and `api-version`.
    fn azure(&self, vars: &Vars<'_>) -> Result<Address, ConfigError> {
        let endpoint = match &self.base_url {
            Some(url) => url.clone(),
            None => vars.required("AZURE_OPENAI_ENDPOINT")?,
        };
        let deployment = match self.model.is_empty() {
            true => vars.required("AZURE_OPENAI_DEPLOYMENT_NAME")?,
            false => self.model.clone(),
        };
        let version = vars
            .get("AZURE_OPENAI_API_VERSION")
            .unwrap_or_else(|| "2024-10-21".to_owned());
        let url = format!(
            "{}/openai/deployments/{deployment}/chat/completions",
            endpoint.trim_end_matches('/')
        );
        let key = Auth::ApiKeyHeader(vars.required(&self.key_var("AZURE_OPENAI_API_KEY"))?);
        Ok(Address {
            url,
            auth: key,
            query: vec![("api-version".to_owned(), version)],
            model: deployment,
        })
    }

    fn base_or(&self, variable: Option<String>, fallback: &str) -> String {
        self.base_url
            .clone()
            .or(variable)
            .unwrap_or_else(|| fallback.to_owned())
    }

    fn key_var(&self, usual: &str) -> String {
        self.api_key_env.clone().unwrap_or_else(|| usual.to_owned())
    }
}

/// Where a model's requests go and how they authenticate.
struct Address {
    url: String,
    auth: Auth,
    query: Vec<(String, String)>,
    model: String,
}

impl Address {
    fn new(url: String, auth: Auth, model: String) -> Address {
        Address {
            url,
            auth,
            query: Vec::new(),
            model,
        }
    }
}

/// The variables a model's settings come from, asked for by name.
struct Vars<'a> {
    alias: &'a str,
    secrets: &'a dyn Fn(&str) -> Option<String>,
}

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.secrets)(name).filter(|value| !value.is_empty())
    }

    fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError::MissingVariable {
            alias: self.alias.to_owned(),
            variable: name.to_owned(),
        })
    }
}

fn chat_url(base: &str) -> String {
    format!("{}/chat/completions", base.trim_end_matches('/'))
}

/// How requests authenticate.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `Authorization: Bearer <key>`.
    Bearer(String),
    /// Azure's `api-key: <key>` header.
    ApiKeyHeader(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never reach logs.
        f.write_str(match self {
            Auth::None => "None",
            Auth::Bearer(_) => "Bearer(***)",
            Auth::ApiKeyHeader(_) => "ApiKeyHeader(***)",
        })
    }
}

/// Everything the HTTP client needs to call one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The provider's name, for errors and records.
    pub provider: String,
    /// The full Chat Completions URL.
    pub url: String,
    pub auth: Auth,
    /// Query parameters (Azure's `api-version`).
    pub query: Vec<(String, String)>,
    /// The `model` sent in the body (for Azure, the deployment, which the URL names too).
    pub model: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// Time allowed for one attempt.
    pub timeout: Duration,
    /// Attempts in all for a retryable fault.
    pub attempts: u32,
    pub stream: bool,
    pub structured_output: StructuredOutput,
}

/// A model alias that cannot be used as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "model `{alias}` needs the environment variable `{variable}`; set it, or change `[models.{alias}]` in finch.toml"
    )]
    MissingVariable { alias: String, variable: String },
    #[error("model `{alias}` needs `base_url` in `[models.{alias}]` of finch.toml")]
    MissingBaseUrl { alias: String },
    #[error("model `{alias}`: `timeout_secs` must be a positive number of seconds")]
    InvalidTimeout { alias: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ModelConfig {
        toml_like(text)
    }

    /// Builds a config from `key = value` lines (the binary reads real TOML).
    fn toml_like(text: &str) -> ModelConfig {
        let mut map = serde_json::Map::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line.split_once('=').expect("key = value");
            let value = value.trim().trim_matches('"');
            map.insert(key.trim().to_owned(), serde_json::Value::String(value.to_owned()));
        }
        serde_json::from_value(serde_json::Value::Object(map)).expect("a model config")
    }

    fn secrets(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn openai_needs_its_key_and_names_the_variable() {
        let model = config("provider = openai\nmodel = gpt-4o-mini");
        let err = model.endpoint("fast", &secrets(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model `fast` needs the environment variable `OPENAI_API_KEY`; set it, or change `[models.fast]` in finch.toml"
        );
        let endpoint = model
            .endpoint("fast", &secrets(&[("OPENAI_API_KEY", "sk-1")]))
            .unwrap();
        assert_eq!(endpoint.url, "https://api.openai.com/v1/chat/completions");
        assert_eq!(endpoint.auth, Auth::Bearer("sk-1".to_owned()));
    }

    #[test]
    fn azure_uses_the_reference_variables() {
        let model = config("provider = azure");
        let vars = secrets(&[
            ("AZURE_OPENAI_API_KEY", "k"),
            ("AZURE_OPENAI_ENDPOINT", "https://finch.openai.azure.com/"),
            ("AZURE_OPENAI_API_VERSION", "2025-01-01-preview"),
            ("AZURE_OPENAI_DEPLOYMENT_NAME", "gpt4o"),
        ]);
        let endpoint = model.endpoint("chat", &vars).unwrap();
        assert_eq!(
            endpoint.url,
            "https://finch.openai.azure.com/openai/deployments/gpt4o/chat/completions"
        );
        assert_eq!(endpoint.auth, Auth::ApiKeyHeader("k".to_owned()));
        assert_eq!(
            endpoint.query,
            vec![("api-version".to_owned(), "2025-01-01-preview".to_owned())]
        );
    }

    #[test]
    fn ollama_and_gemini_have_their_own_addresses() {
        let ollama = config("provider = ollama\nmodel = llama3.2");
        let endpoint = ollama
            .endpoint("local", &secrets(&[("OLLAMA_BASE_URL", "http://gpu:11434/")]))
            .unwrap();
        assert_eq!(
            (endpoint.url.as_str(), &endpoint.auth),
            ("http://gpu:11434/v1/chat/completions", &Auth::None)
        );
        let gemini = config("provider = gemini\nmodel = gemini-2.0-flash");
        let endpoint = gemini
            .endpoint("g", &secrets(&[("GOOGLE_API_KEY", "g-1")]))
            .unwrap();
        assert_eq!(
            endpoint.url,
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"
        );
    }

    #[test]
    fn a_self_hosted_server_needs_its_address() {
        let vllm = config("provider = vllm\nmodel = qwen");
        assert_eq!(
            vllm.endpoint("q", &secrets(&[])).unwrap_err(),
            ConfigError::MissingBaseUrl {
                alias: "q".to_owned()
            }
        );
        let vllm = config("provider = vllm\nmodel = qwen\nbase_url = http://gpu:8000/v1");
        assert_eq!(
            vllm.endpoint("q", &secrets(&[])).unwrap().url,
            "http://gpu:8000/v1/chat/completions"
        );
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        assert_eq!(
            format!("{:?}", Auth::Bearer("sk-secret".to_owned())),
            "Bearer(***)"
        );
    }
}
