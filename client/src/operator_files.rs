//! The operator calls on agents' sandboxes and persistent volumes:
//! `LIST_FILES`, `READ_FILE` (paths `/agents/<agent-id>/frameworks/...`
//! on a Keel master), `CREATE_VOLUMES`, `DESTROY_VOLUMES`, `GROW_VOLUME`,
//! `SHRINK_VOLUME`.

use keel_api::operator::{
    Call, FileInfo, GrowVolume, ListFiles, ReadFile, ReadFileAnswer, Response, ShrinkVolume,
    Volumes,
};

use crate::{Client, ClientError};

impl Client {
    /// `LIST_FILES`: a directory's entries (a file lists itself).
    pub async fn list_files(&self, path: &str) -> Result<Vec<FileInfo>, ClientError> {
        let call = Call::ListFiles(ListFiles {
            path: path.to_string(),
        });
        match self.call(&call).await? {
            Some(Response::ListFiles(l)) => Ok(l.file_infos),
            other => Err(unexpected(&call, other)),
        }
    }

    /// `READ_FILE`: up to `length` bytes (64 KiB at most) from `offset`,
    /// and the file's size.
    pub async fn read_file(
        &self,
        path: &str,
        offset: i64,
        length: Option<i64>,
    ) -> Result<ReadFileAnswer, ClientError> {
        let call = Call::ReadFile(ReadFile {
            path: path.to_string(),
            offset,
            length,
        });
        match self.call(&call).await? {
            Some(Response::ReadFile(r)) => Ok(r),
            other => Err(unexpected(&call, other)),
        }
    }

    /// `CREATE_VOLUMES` on reserved disk of one agent.
    pub async fn create_volumes(&self, volumes: Volumes) -> Result<(), ClientError> {
        self.call(&Call::CreateVolumes(volumes)).await.map(drop)
    }

    /// `DESTROY_VOLUMES`: the volumes' disk goes back to the reservation.
    pub async fn destroy_volumes(&self, volumes: Volumes) -> Result<(), ClientError> {
        self.call(&Call::DestroyVolumes(volumes)).await.map(drop)
    }

    /// `GROW_VOLUME`.
    pub async fn grow_volume(&self, grow: GrowVolume) -> Result<(), ClientError> {
        self.call(&Call::GrowVolume(grow)).await.map(drop)
    }

    /// `SHRINK_VOLUME`.
    pub async fn shrink_volume(&self, shrink: ShrinkVolume) -> Result<(), ClientError> {
        self.call(&Call::ShrinkVolume(shrink)).await.map(drop)
    }
}

fn unexpected(call: &Call, got: Option<Response>) -> ClientError {
    ClientError::UnexpectedAnswer {
        call: call.kind().to_string(),
        got: got.map_or("nothing".to_string(), |r| r.kind().to_string()),
    }
}
